//! A certificate authority made fresh for a test, and certificates it issues to services and
//! callers, written as PEM files the way Kubernetes mounts a TLS secret. Nothing secret is
//! committed: every key lives for one test run.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// One deployment's authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

/// The files of one identity: what `TLS_CERT_FILE`, `TLS_KEY_FILE` and `TLS_CA_FILE` name.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl CertFiles {
    /// The settings that make a service use these files.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TLS_CERT_FILE", self.cert.display().to_string()),
            ("TLS_KEY_FILE", self.key.display().to_string()),
            ("TLS_CA_FILE", self.ca.display().to_string()),
        ]
    }

    /// What a client with these files connects with.
    pub fn tls_files(&self) -> inventory_runtime::tls::TlsFiles {
        inventory_runtime::tls::TlsFiles {
            cert: Some(self.cert.clone()),
            key: Some(self.key.clone()),
            ca: Some(self.ca.clone()),
            ..Default::default()
        }
    }
}

impl TestCa {
    /// A new authority, its files in a fresh directory under the system's temporary one.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("inventory-pki-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a directory for test certificates");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        std::fs::write(dir.join("ca.crt"), issuer.pem()).expect("ca.crt written");
        Self { issuer, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate for `name` (its files `<name>.crt` and `<name>.key`), valid for
    /// localhost and 127.0.0.1 as a server and carrying each of `uris` (the SPIFFE ids that
    /// name it as a caller).
    pub fn issue(&self, name: &str, uris: &[&str]) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            ca: self.ca_file(),
        };
        self.issue_into(&files.cert, &files.key, name, uris);
        files
    }

    /// Writes a fresh certificate for `name` over `cert` and `key` (a renewal).
    pub fn issue_into(&self, cert: &Path, key: &Path, name: &str, uris: &[&str]) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server names");
        params.distinguished_name.push(DnType::CommonName, name);
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().expect("an ASCII URI")));
        }
        let pair = KeyPair::generate().expect("a key");
        let certificate = params.signed_by(&pair, &self.issuer).expect("signed");
        // The key first: a watcher that sees the new certificate finds its key beside it.
        std::fs::write(key, pair.serialize_pem()).expect("key written");
        std::fs::write(cert, certificate.pem()).expect("certificate written");
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A channel to `url` (`https://127.0.0.1:port`) as the holder of `files`.
pub fn tls_channel(url: &str, files: &CertFiles) -> tonic::transport::Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).expect("a URL");
    inventory_runtime::tls::endpoint_channel(endpoint, &files.tls_files()).expect("a channel")
}
