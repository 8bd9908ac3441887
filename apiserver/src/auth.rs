//! Authentication: who is making a request. Client certificates (verified by TLS against the
//! cluster CA; the subject's CN is the user name and each O a group, as upstream) and bearer
//! tokens from `--token-auth-file` (upstream's CSV: `token,user,uid,"group1,group2"`).
//! Authorization is "any authenticated user may do anything" for now; anonymous requests
//! reach only the health and version endpoints.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;

use crate::error::{Error, Result};

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// User id, if the authenticator knows one.
    pub uid: String,
    /// Groups, always including `system:authenticated`.
    pub groups: Vec<String>,
}

impl User {
    fn new(name: String, uid: String, mut groups: Vec<String>) -> Self {
        groups.push("system:authenticated".into());
        User { name, uid, groups }
    }
}

/// Subject fields of an X.509 certificate that authentication uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The common name (CN).
    pub common_name: Option<String>,
    /// Organization names (O), in order.
    pub organizations: Vec<String>,
}

/// The user a verified client certificate (DER) stands for.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let s = subject_of(der)?;
    Some(User::new(s.common_name?, String::new(), s.organizations))
}

/// Decodes the first PEM block of `pem` to DER.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN ")?;
    let body_start = start + pem[start..].find('\n')? + 1;
    let end = body_start + pem[body_start..].find("-----END ")?;
    let b64: String = pem[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// One DER element: (tag, content, rest of input).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// Parses the subject out of a DER certificate without verifying anything (TLS did).
pub fn subject_of(der: &[u8]) -> Option<Subject> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    // Skip the optional [0] version, then serial, signature, issuer, validity.
    let (tag, _, rest) = tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
        tbs = tlv(tbs)?.2; // serial
    } else {
        tbs = rest; // that was the serial
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, mut name, _) = tlv(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut subject = Subject::default();
    while !name.is_empty() {
        let (tag, mut rdn, rest) = tlv(name)?;
        name = rest;
        if tag != SET {
            return None;
        }
        while !rdn.is_empty() {
            let (tag, atv, rest) = tlv(rdn)?;
            rdn = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = tlv(atv)?;
            if tag != OID {
                return None;
            }
            let (_, text, _) = tlv(value)?;
            let text = String::from_utf8_lossy(text).into_owned();
            if oid == OID_CN {
                subject.common_name = Some(text);
            } else if oid == OID_O {
                subject.organizations.push(text);
            }
        }
    }
    Some(subject)
}

/// Bearer tokens from a `--token-auth-file`.
#[derive(Debug, Default, Clone)]
pub struct TokenFile {
    users: HashMap<String, User>,
}

impl TokenFile {
    /// Loads a token file: one `token,user,uid[,"group1,group2"]` per line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        Self::parse(&text)
            .map_err(|(line, msg)| Error::Config(format!("{}:{line}: {msg}", path.display())))
    }

    /// Parses token file text; errors carry the 1-based line number.
    pub fn parse(text: &str) -> std::result::Result<Self, (usize, String)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line).map_err(|m| (i + 1, m))?;
            if fields.len() < 3 {
                return Err((i + 1, "expected at least 3 columns: token,user,uid".into()));
            }
            if fields[0].is_empty() || fields[1].is_empty() {
                return Err((i + 1, "token and user must not be empty".into()));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            users.insert(
                fields[0].clone(),
                User::new(fields[1].clone(), fields[2].clone(), groups),
            );
        }
        Ok(TokenFile { users })
    }

    /// The user a bearer token stands for.
    pub fn user(&self, token: &str) -> Option<&User> {
        self.users.get(token)
    }
}

fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if cur.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_parses_upstream_format() {
        let f = TokenFile::parse("# comment\nsecret1,alice,1001,\"dev,ops\"\nsecret2,bob,1002\n")
            .unwrap();
        let alice = f.user("secret1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(f.user("secret2").unwrap().groups, ["system:authenticated"]);
        assert!(f.user("nope").is_none());
        assert_eq!(TokenFile::parse("x,y").unwrap_err().0, 1);
        assert_eq!(TokenFile::parse("a,b,c\n\"x,y,z").unwrap_err().0, 2);
    }

    #[test]
    fn garbage_certificates_do_not_panic() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x02, 0x30, 0x00],
        ] {
            assert!(subject_of(input).is_none());
        }
    }
}
