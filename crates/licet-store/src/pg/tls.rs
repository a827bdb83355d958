//! TLS to the database: rustls (with ring, as the server's own TLS), the certificate always
//! verified.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Takes `sslrootcert=PATH` out of a URL's query (tokio-postgres refuses options it does not
/// know): the URL without it, and the path. A URL naming a root certificate but no `sslmode`
/// gets `sslmode=require`: under the default `prefer`, anyone on the path could answer "no
/// TLS" and be talked to in the clear.
pub(crate) fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((head, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut root = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(path.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let mut rest = rest;
    if root.is_some() && !rest.iter().any(|pair| pair.starts_with("sslmode=")) {
        rest.push("sslmode=require");
    }
    let url = if rest.is_empty() { head.to_owned() } else { format!("{head}?{}", rest.join("&")) };
    (url, root)
}

/// A connector trusting the CA certificates of `root_cert` (a PEM file), or the system's roots.
pub(crate) fn connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(Path::new(path))
                .map_err(|e| format!("sslrootcert {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in it"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        None => {
            // Unreadable system certificates only mean fewer roots; a server they would have
            // verified is then refused, never accepted unverified.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_certificate_option_is_taken_out_of_the_url() {
        let (url, root) =
            split_root_cert("postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem&application_name=x");
        assert_eq!(url, "postgres://u@h/db?sslmode=require&application_name=x");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslrootcert=/ca.pem"),
            ("postgres://u@h/db?sslmode=require".into(), Some("/ca.pem".into()))
        );
        assert_eq!(split_root_cert("postgres://u@h/db"), ("postgres://u@h/db".into(), None));
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslmode=disable&sslrootcert=/ca.pem").0,
            "postgres://u@h/db?sslmode=disable"
        );
        assert!(connector(Some("/nonexistent/ca.pem")).is_err());
    }
}
