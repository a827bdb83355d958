//! How a vendor's program links `licet-agent` and gates a feature with one call.
//!
//! `cargo run --example embed` (uses `LICET_SERVER` and `LICET_TRUSTED_KEYS` if set, otherwise a
//! throwaway local server).

#[path = "common/demo.rs"]
mod demo;

use licet::agent::{Agent, AgentConfig, RegistrationForm};

/// The one call a feature needs. Checks are cheap after the first (well under a microsecond)
/// and keep passing while the license server is unreachable, until the offline lease ends.
fn call_journal_enabled(agent: &Agent) -> bool {
    match agent.check("call-journal") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("call journal disabled: {e} ({} {})", e.code().number(), e.code().name());
            false
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = demo::server()?;
    let data = tempfile::tempdir()?;

    // The vendor embeds the server's URL and public key in its program; the cache lives in the
    // program's data directory.
    let agent = Agent::new(AgentConfig::new(&server.url, data.path()).trust(&server.public_key))?;
    println!("this host's fingerprint has {} components", agent.fingerprint().components().len());

    println!("before registering: enabled = {}", call_journal_enabled(&agent));

    // First run: the program's settings dialog registers (or takes an existing number).
    if agent.number()?.is_none() {
        let form = RegistrationForm {
            email: format!("demo-{}@example.com", std::process::id()),
            organization: "Demo LLC".into(),
            product: "call-journal".into(),
            ..Default::default()
        };
        let (number, license) = agent.register(&form)?;
        println!(
            "registered {} with a {} license",
            licet::core::RegistrationNumber::parse(&number)?.masked(),
            license.kind.as_str()
        );
    }

    println!("after registering:  enabled = {}", call_journal_enabled(&agent));
    let started = std::time::Instant::now();
    let mut passed = 0;
    for _ in 0..100_000 {
        passed += usize::from(call_journal_enabled(&agent));
    }
    println!("{passed} checks in {:?}", started.elapsed());
    Ok(())
}
