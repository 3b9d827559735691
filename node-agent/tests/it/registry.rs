//! A real image registry for the tests: Debian's `docker-registry` (the distribution
//! registry) on loopback, on a port the kernel picks, with TLS from a CA made for the test
//! and htpasswd (bcrypt) auth, all in a temp dir; stopped when the [`TestRegistry`] is
//! dropped. Images are pushed into it from the archives `scripts/build-images.sh` makes,
//! with Debian's `skopeo`. `scripts/containerd-setup.sh` installs all three tools.
//!
//! Shared with the CLI's tests (`#[path]`-included there), so it uses only std, tempfile
//! and rafter-client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};

/// A running registry. Its address is `127.0.0.1:<port>`.
pub struct TestRegistry {
    dir: tempfile::TempDir,
    child: Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The user every push and authorised pull uses.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl TestRegistry {
    /// Starts a registry that serves TLS with a fresh test CA and accepts `user`/`password`
    /// (and nothing anonymous).
    pub fn start(user: &str, password: &str) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ca = ClusterCa::generate("test registry").unwrap();
        let server = ca
            .issue(&CertRequest {
                common_name: "127.0.0.1".into(),
                organizations: Vec::new(),
                subject_alt_names: vec!["127.0.0.1".into(), "localhost".into()],
                usage: CertUsage::Server,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        std::fs::write(root.join("ca.crt"), ca.cert_pem()).unwrap();
        std::fs::write(root.join("server.crt"), &server.cert_pem).unwrap();
        std::fs::write(root.join("server.key"), &server.key_pem).unwrap();
        // skopeo's --dest-cert-dir takes a directory of *.crt CAs.
        std::fs::create_dir(root.join("certs")).unwrap();
        std::fs::write(root.join("certs/ca.crt"), ca.cert_pem()).unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd (apache2-utils; scripts/containerd-setup.sh installs it)");
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(root.join("htpasswd"), &htpasswd.stdout).unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: {root}/server.crt\n    key: {root}/server.key\n\
             auth:\n  htpasswd:\n    realm: rafter-test\n    path: {root}/htpasswd\n",
            root = root.display()
        );
        std::fs::write(root.join("config.yml"), config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(root.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry (scripts/containerd-setup.sh installs it)");
        // It logs `listening on 127.0.0.1:<port>, tls` once it accepts connections.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                            .collect();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("docker-registry did not say where it listens within 30 s");
        TestRegistry {
            dir,
            child,
            host,
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The test CA's certificate file (what containerd must trust for [`Self::host`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// `<host>/<repository>`: an image reference in this registry.
    pub fn image(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host)
    }

    /// Pushes an OCI layout (or, with a `docker-archive:` name, docker) archive under
    /// `repository:tag`; returns the full image reference.
    pub fn push(&self, archive: &Path, repository_and_tag: &str) -> String {
        let reference = self.image(repository_and_tag);
        let transport = if is_docker_archive(archive) {
            "docker-archive"
        } else {
            "oci-archive"
        };
        let out = Command::new("skopeo")
            .arg("copy")
            .arg("--dest-cert-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--dest-creds")
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("{transport}:{}", archive.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("skopeo (scripts/containerd-setup.sh installs it)");
        assert!(
            out.status.success(),
            "skopeo copy {} to {reference} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        reference
    }
}

/// Whether `archive` is a docker archive (`manifest.json` at its root) rather than an OCI
/// layout (`index.json`).
fn is_docker_archive(archive: &Path) -> bool {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "manifest.json" || l == "./manifest.json")
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
