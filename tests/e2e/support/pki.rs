//! Real certificates made with openssl: private CAs, server certificates for 127.0.0.1
//! and client certificates, in a test's temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::require_tool;

/// A private CA in `dir`: `<name>.pem` and its key.
pub struct Ca {
    dir: PathBuf,
    name: String,
    pub cert: PathBuf,
}

/// A certificate and its key, signed by a [`Ca`].
pub struct Signed {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new(require_tool("openssl"))
        .current_dir(dir)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
        );
        Ca {
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert: dir.join(cert),
        }
    }

    /// A server certificate for 127.0.0.1.
    pub fn server(&self, name: &str) -> Signed {
        self.sign(
            name,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Signed {
        self.sign(name, "extendedKeyUsage=clientAuth\n")
    }

    fn sign(&self, name: &str, extensions: &str) -> Signed {
        let (cert, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        std::fs::write(self.dir.join(&ext), extensions).unwrap();
        let (ca_cert, ca_key) = (format!("{}.pem", self.name), format!("{}.key", self.name));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
        Signed {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}
