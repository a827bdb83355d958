//! What identifies this machine: components read from the machine itself, each reduced to a
//! keyed hash before it goes anywhere.
//!
//! * `machine-id`: `/etc/machine-id` (Linux), `MachineGuid` (Windows), `IOPlatformUUID` (macOS);
//! * `mac`: the MAC addresses of physical network interfaces (no loopback, bridges, veth, docker);
//! * `disk`: the root disk's id where it can be read (Linux: `/dev/disk/by-id`);
//! * `hostname`.
//!
//! `LICET_FINGERPRINT="name=value,…"` replaces the measured components (values used as given),
//! `LICET_HOSTNAME` the host name.

use std::collections::BTreeMap;

use licet_core::{Error as CoreError, Fingerprint};

/// Parses `name=value,name=value` (the `LICET_FINGERPRINT` format).
pub fn parse_override(text: &str) -> Result<Fingerprint, CoreError> {
    let mut pairs = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| CoreError::InvalidInput {
            field: "LICET_FINGERPRINT",
            reason: format!("{part:?} is not name=value"),
        })?;
        pairs.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Fingerprint::new(pairs)
}

/// The host name: `LICET_HOSTNAME`, else the system's.
pub fn hostname() -> String {
    if let Ok(name) = std::env::var("LICET_HOSTNAME") {
        return name;
    }
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| command_output("hostname", &[]))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A short description of the operating system.
pub fn os() -> String {
    let pretty = read_trimmed("/etc/os-release").and_then(|text| {
        text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
    });
    pretty.unwrap_or_else(|| std::env::consts::OS.to_owned())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|s| !s.is_empty())
}

#[cfg(target_os = "linux")]
fn machine_id() -> Option<String> {
    read_trimmed("/etc/machine-id").or_else(|| read_trimmed("/var/lib/dbus/machine-id"))
}

#[cfg(target_os = "windows")]
fn machine_id() -> Option<String> {
    let out = command_output("reg", &["query", r"HKLM\SOFTWARE\Microsoft\Cryptography", "/v", "MachineGuid"])?;
    out.lines().find_map(|l| l.split_whitespace().last().filter(|_| l.contains("MachineGuid")).map(str::to_owned))
}

#[cfg(target_os = "macos")]
fn machine_id() -> Option<String> {
    let out = command_output("ioreg", &["-rd1", "-c", "IOPlatformExpertDevice"])?;
    out.lines().find(|l| l.contains("IOPlatformUUID")).and_then(|l| l.split('"').nth(3)).map(str::to_owned)
}

#[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
fn machine_id() -> Option<String> {
    None
}

/// MACs of physical interfaces, sorted and joined.
#[cfg(target_os = "linux")]
fn macs() -> Option<String> {
    let mut macs = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let virtual_name =
            ["lo", "docker", "br-", "veth", "virbr", "vnet", "tun", "tap", "wg"].iter().any(|p| name.starts_with(p));
        // Physical interfaces have a backing device; virtual ones do not.
        if virtual_name || !entry.path().join("device").exists() {
            continue;
        }
        if let Some(mac) = read_trimmed(&format!("/sys/class/net/{name}/address")).filter(|m| m != "00:00:00:00:00:00")
        {
            macs.push(mac);
        }
    }
    macs.sort();
    (!macs.is_empty()).then(|| macs.join(","))
}

#[cfg(not(target_os = "linux"))]
fn macs() -> Option<String> {
    None
}

/// The id of the disk that holds `/`.
#[cfg(target_os = "linux")]
fn root_disk() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let device = mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (dev, mount) = (f.next()?, f.next()?);
        (mount == "/" && dev.starts_with("/dev/")).then(|| dev.to_owned())
    })?;
    let device = std::fs::canonicalize(&device).ok()?;
    for entry in std::fs::read_dir("/dev/disk/by-id").ok()?.flatten() {
        if std::fs::canonicalize(entry.path()).ok().as_ref() == Some(&device) {
            return Some(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let name = device.file_name()?.to_string_lossy().into_owned();
    read_trimmed(&format!("/sys/class/block/{name}/serial"))
        .or_else(|| read_trimmed(&format!("/sys/class/block/{name}/device/serial")))
}

#[cfg(not(target_os = "linux"))]
fn root_disk() -> Option<String> {
    None
}

/// Measures this machine: every readable component, hashed under `secret`.
pub fn measure(secret: &[u8]) -> Result<Fingerprint, CoreError> {
    let mut raw = BTreeMap::new();
    for (name, value) in
        [("machine-id", machine_id()), ("mac", macs()), ("disk", root_disk()), ("hostname", Some(hostname()))]
    {
        if let Some(v) = value {
            raw.insert(name, Fingerprint::keyed_value(secret, name, &v));
        }
    }
    Fingerprint::new(raw)
}

/// This machine's fingerprint: `LICET_FINGERPRINT` if set, else measured.
pub fn current(secret: &[u8]) -> Result<Fingerprint, CoreError> {
    match std::env::var("LICET_FINGERPRINT") {
        Ok(text) if !text.trim().is_empty() => parse_override(&text),
        _ => measure(secret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_bad_ones_are_refused() -> Result<(), CoreError> {
        let fp = parse_override("machine-id=abc, mac=def,disk=ghi")?;
        assert_eq!(fp.components()["mac"], "def");
        assert!(parse_override("nonsense").is_err());
        assert!(parse_override("").is_err());
        Ok(())
    }

    #[test]
    fn measuring_this_machine_yields_hashed_components() -> Result<(), CoreError> {
        let fp = measure(b"secret")?;
        assert!(fp.components().contains_key("hostname"));
        for value in fp.components().values() {
            assert_eq!(value.len(), 32, "a keyed hash, never a raw id");
        }
        assert_eq!(measure(b"secret")?, fp, "stable between readings");
        assert_ne!(measure(b"other")?, fp, "keyed by the vendor's secret");
        Ok(())
    }
}
