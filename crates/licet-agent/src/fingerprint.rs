//! What identifies this machine: components read from the machine itself, each reduced to a
//! keyed hash ([`licet_core::Fingerprint::keyed`]) before it goes anywhere.
//!
//! * `machine-id`: `/etc/machine-id` (Linux), `MachineGuid` (Windows), `IOPlatformUUID` (macOS);
//! * `mac`: the MAC addresses of physical network interfaces (no loopback, bridges, veth, docker);
//! * `disk`: the root disk's id where it can be read (Linux: `/dev/disk/by-id`);
//! * `hostname`.
//!
//! Nothing here reads the environment: a variable must not be able to make fifty machines one.

use std::collections::BTreeMap;

use licet_core::Error as CoreError;

/// Parses `name=value,name=value` (the format of the CLI's test overrides).
pub fn parse_components(text: &str) -> Result<BTreeMap<String, String>, CoreError> {
    let mut components = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| CoreError::InvalidInput {
            field: "fingerprint",
            reason: format!("{part:?} is not name=value"),
        })?;
        components.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(components)
}

/// The system's host name.
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
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

/// This machine's raw component values, as read (never sent anywhere unhashed).
pub fn measure_raw() -> BTreeMap<String, String> {
    [("machine-id", machine_id()), ("mac", macs()), ("disk", root_disk()), ("hostname", Some(hostname()))]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect()
}

/// The key that hashes a vendor's fingerprints: its secret, else its name. Never a trusted
/// signing key, so that a host stays one host whatever keys its programs trust, in any order.
pub fn vendor_key(vendor: &str, secret: Option<&[u8]>) -> Vec<u8> {
    match secret {
        Some(secret) => secret.to_vec(),
        None => format!("licet-vendor:{}", vendor.trim()).into_bytes(),
    }
}

/// What release 0.1.0 keyed its hashes with: the vendor's secret when set, else the first
/// trusted key as configured, lower-cased (or `licet` without one).
pub fn key_of_0_1_0(trusted_keys: &[String], secret: Option<&[u8]>) -> Vec<u8> {
    match (secret, trusted_keys.first()) {
        (Some(secret), _) => secret.to_vec(),
        (None, Some(key)) => key.trim().to_lowercase().into_bytes(),
        (None, None) => b"licet".to_vec(),
    }
}

/// This machine's raw values as release 0.1.0 read them, for its hashes only: the same, but the
/// host name as 0.1.0 took it — `/proc`, else the `hostname` command. (0.1.0 read the
/// `COMPUTERNAME` and `HOSTNAME` variables before the command; the library reads no
/// environment, so where those differ from the command — Windows' upper-case NetBIOS name — the
/// legacy hash's host name does not match, and the two-thirds rule finds the binding 0.1.0 made
/// by its other components.)
pub fn measure_raw_as_0_1_0() -> BTreeMap<String, String> {
    let mut raw = measure_raw();
    let hostname = read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| command_output("hostname", &[]))
        .unwrap_or_else(|| "unknown".to_owned());
    raw.insert("hostname".to_owned(), hostname);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use licet_core::Fingerprint;

    #[test]
    fn components_parse_and_bad_ones_are_refused() -> Result<(), CoreError> {
        let raw = parse_components("machine-id=abc, mac=def,disk=ghi")?;
        assert_eq!(raw["mac"], "def");
        assert!(parse_components("nonsense").is_err());
        assert!(parse_components("").map(|c| c.is_empty())?);
        Ok(())
    }

    #[test]
    fn this_machine_hashes_to_the_same_fingerprint_whatever_keys_are_trusted() -> Result<(), CoreError> {
        let raw = measure_raw();
        assert!(raw.contains_key("hostname"));
        let key = vendor_key("MIKO", None);
        let fp = Fingerprint::keyed(&key, &raw)?;
        for value in fp.components().values() {
            assert_eq!(value.len(), 32, "a keyed hash, never a raw id");
        }
        assert_eq!(Fingerprint::keyed(&key, &measure_raw())?, fp, "stable between readings");
        assert_ne!(Fingerprint::keyed(&vendor_key("ACME", None), &raw)?, fp, "vendors see different hashes");
        assert_ne!(Fingerprint::keyed(&vendor_key("MIKO", Some(b"s3cret")), &raw)?, fp);
        Ok(())
    }
}
