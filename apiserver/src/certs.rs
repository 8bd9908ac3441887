//! The apiserver's PKI in `--data-dir`: a cluster CA, the serving certificate and an admin
//! client certificate (`O=system:masters`), created on first start and reused afterwards, and
//! `admin.kubeconfig` pointing at the server with the admin credentials embedded.
//!
//! The CA's certificate parameters are deterministic, so the issuer can be rebuilt from the
//! stored CA key alone when more certificates are signed later (kubelets, components).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// File names under the data directory.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVING_CERT: &str = "apiserver.crt";
const SERVING_KEY: &str = "apiserver.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";
const KUBELET_CLIENT_CERT: &str = "apiserver-kubelet-client.crt";
const KUBELET_CLIENT_KEY: &str = "apiserver-kubelet-client.key";
/// The admin kubeconfig written for users.
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";

/// PEM material the server needs.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM): trust anchor for clients and for client certificates.
    pub ca_cert: String,
    /// The CA private key (PEM), to sign further certificates.
    pub ca_key: String,
    /// The serving certificate chain (PEM).
    pub serving_cert: String,
    /// The serving key (PEM).
    pub serving_key: String,
    /// The client certificate the apiserver shows kubelets (PEM).
    pub kubelet_client_cert: String,
    /// Its key (PEM).
    pub kubelet_client_key: String,
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "berth-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

fn leaf_params(cn: &str, orgs: &[&str], server: bool, sans: Vec<SanType>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = sans;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::Certificate(format!("{what}: {e}"))
}

/// A CA able to sign certificates, loaded from the data directory.
#[derive(Debug)]
pub struct Ca {
    key: KeyPair,
    /// The CA certificate (PEM).
    pub cert_pem: String,
}

impl Ca {
    /// Loads the CA from PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err("reading the CA key"))?;
        Ok(Ca {
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// Signs a certificate for `cn` with organizations `orgs` (groups). Returns (cert, key)
    /// PEM. `server` selects serverAuth (with `sans`) or clientAuth.
    pub fn sign(
        &self,
        cn: &str,
        orgs: &[&str],
        server: bool,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String)> {
        let mut sans: Vec<SanType> = Vec::new();
        for d in dns {
            let name = d.clone().try_into().map_err(cert_err("DNS name"))?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let key = KeyPair::generate().map_err(cert_err("generating a key"))?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = leaf_params(cn, orgs, server, sans)
            .signed_by(&key, &issuer)
            .map_err(cert_err("signing"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

fn write(dir: &Path, name: &str, body: &str, private: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| Error::io("writing", &tmp, e))?;
    std::io::Write::write_all(&mut f, body.as_bytes())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &path, e))
}

/// Loads the PKI from `dir`, creating whatever is missing. `dns` and `ips` are the serving
/// certificate's subject alternative names (used only when it is created).
pub fn ensure(dir: &Path, dns: &[String], ips: &[IpAddr]) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let (ca_cert, ca_key) = match (read(dir, CA_CERT), read(dir, CA_KEY)) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
            let cert = ca_params()
                .self_signed(&key)
                .map_err(cert_err("self-signing the CA"))?;
            let (c, k) = (cert.pem(), key.serialize_pem());
            write(dir, CA_KEY, &k, true)?;
            write(dir, CA_CERT, &c, false)?;
            // A new CA invalidates every certificate it did not sign.
            for stale in [
                KUBELET_CLIENT_CERT,
                KUBELET_CLIENT_KEY,
                SERVING_CERT,
                SERVING_KEY,
                ADMIN_CERT,
                ADMIN_KEY,
                ADMIN_KUBECONFIG,
            ] {
                let _ = std::fs::remove_file(dir.join(stale));
            }
            (c, k)
        }
    };
    let ca = Ca::from_pem(&ca_cert, &ca_key)?;
    let (serving_cert, serving_key) = match (read(dir, SERVING_CERT), read(dir, SERVING_KEY)) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let (c, k) = ca.sign("kube-apiserver", &[], true, dns, ips)?;
            write(dir, SERVING_KEY, &k, true)?;
            write(dir, SERVING_CERT, &c, false)?;
            (c, k)
        }
    };
    if read(dir, ADMIN_CERT).is_none() || read(dir, ADMIN_KEY).is_none() {
        let (c, k) = ca.sign("kubernetes-admin", &["system:masters"], false, &[], &[])?;
        write(dir, ADMIN_KEY, &k, true)?;
        write(dir, ADMIN_CERT, &c, false)?;
    }
    let (kubelet_client_cert, kubelet_client_key) = match (
        read(dir, KUBELET_CLIENT_CERT),
        read(dir, KUBELET_CLIENT_KEY),
    ) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let (c, k) = ca.sign(
                "kube-apiserver-kubelet-client",
                &["system:masters"],
                false,
                &[],
                &[],
            )?;
            write(dir, KUBELET_CLIENT_KEY, &k, true)?;
            write(dir, KUBELET_CLIENT_CERT, &c, false)?;
            (c, k)
        }
    };
    Ok(Pki {
        ca_cert,
        ca_key,
        serving_cert,
        serving_key,
        kubelet_client_cert,
        kubelet_client_key,
    })
}

/// Writes `<dir>/admin.kubeconfig` for `server` (e.g. `https://127.0.0.1:6443`) with the
/// admin client certificate embedded. Returns its path.
pub fn write_admin_kubeconfig(dir: &Path, server: &str) -> Result<PathBuf> {
    let missing = |n: &str| Error::Certificate(format!("{} is missing", dir.join(n).display()));
    let ca = read(dir, CA_CERT).ok_or_else(|| missing(CA_CERT))?;
    let cert = read(dir, ADMIN_CERT).ok_or_else(|| missing(ADMIN_CERT))?;
    let key = read(dir, ADMIN_KEY).ok_or_else(|| missing(ADMIN_KEY))?;
    let body = kubeconfig(server, &ca, "kubernetes-admin", &cert, &key);
    write(dir, ADMIN_KUBECONFIG, &body, true)?;
    Ok(dir.join(ADMIN_KUBECONFIG))
}

/// A kubeconfig with one cluster, user and context (`berth`), credentials embedded.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: berth\n  context:\n    cluster: berth\n    user: {user}\ncurrent-context: berth\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ips = ["127.0.0.1".parse().unwrap()];
        let a = ensure(dir.path(), &["localhost".into()], &ips).unwrap();
        let b = ensure(dir.path(), &["localhost".into()], &ips).unwrap();
        assert_eq!(a.ca_cert, b.ca_cert);
        assert_eq!(a.serving_cert, b.serving_cert);
        let kc = write_admin_kubeconfig(dir.path(), "https://127.0.0.1:6443").unwrap();
        let text = std::fs::read_to_string(kc).unwrap();
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains("client-certificate-data: "));
        let admin = std::fs::read_to_string(dir.path().join(ADMIN_CERT)).unwrap();
        let der = crate::auth::pem_to_der(&admin).unwrap();
        let subject = crate::auth::subject_of(&der).unwrap();
        assert_eq!(subject.common_name.as_deref(), Some("kubernetes-admin"));
        assert_eq!(subject.organizations, vec!["system:masters".to_string()]);
    }
}
