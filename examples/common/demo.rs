//! For the examples: the server named by the environment, or a throwaway local one.

use licet::server::{Background, ServerConfig};

/// A server to talk to and what the examples need to know about it (each example uses part).
#[allow(dead_code)]
pub(crate) struct Demo {
    /// The server's URL.
    pub(crate) url: String,
    /// Its public key (the agent trusts it).
    pub(crate) public_key: String,
    /// The admin token, if known.
    pub(crate) admin_token: Option<String>,
    /// Keeps a local server (and its temporary directory) alive.
    _local: Option<(Background, tempfile::TempDir)>,
}

/// `LICET_SERVER` (+ `LICET_TRUSTED_KEYS`, `LICET_ADMIN_TOKEN`) if set; otherwise a server
/// started here on 127.0.0.1:0 in a temporary directory, with product `call-journal`.
pub(crate) fn server() -> Result<Demo, Box<dyn std::error::Error>> {
    if let (Ok(url), Ok(keys)) = (std::env::var("LICET_SERVER"), std::env::var("LICET_TRUSTED_KEYS")) {
        let public_key = keys.split(',').next().unwrap_or_default().trim().to_owned();
        return Ok(Demo { url, public_key, admin_token: std::env::var("LICET_ADMIN_TOKEN").ok(), _local: None });
    }
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig::new(dir.path().join("server"));
    config.listen = "127.0.0.1:0".into();
    let server = Background::start(config)?;
    let running = server.server();
    let (url, public_key) = (running.url.clone(), running.public_key.clone());
    let admin_token = running.initialised.as_ref().map(|f| f.admin_token.clone());
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    http.put(format!("{url}/v1/admin/products/call-journal"))
        .header("Authorization", format!("Bearer {}", admin_token.clone().unwrap_or_default()))
        .send_json(serde_json::json!({"name": "Call journal"}))?;
    eprintln!("(started a local license server at {url}; set LICET_SERVER and LICET_TRUSTED_KEYS to use yours)");
    Ok(Demo { url, public_key, admin_token, _local: Some((server, dir)) })
}
