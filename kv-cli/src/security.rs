//! Where the cluster secret and the client password come from.
//!
//! The secret is `KV_SECRET` when set (the secret itself), else the
//! config's `[security] secret_file`; the password is `KV_PASSWORD` when
//! set, else `[security] client_password`. An embedded cluster with no
//! secret configured makes a random one for the run, so its nodes always
//! authenticate each other. A node that listens beyond loopback without a
//! secret is warned about at start.

use std::net::SocketAddr;

use kv_node::{ClientOptions, ClusterSecret, NodeOptions};
use kv_router::ClusterConfig;

use crate::error::CliError;

/// Environment variable holding the cluster secret.
pub const SECRET_ENV: &str = "KV_SECRET";
/// Environment variable holding the client password.
pub const PASSWORD_ENV: &str = "KV_PASSWORD";

/// The secret and password for this run.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The cluster secret, if any.
    pub secret: Option<ClusterSecret>,
    /// The client password, if any.
    pub password: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Security {
    /// The settings of the environment alone (no config at hand, as with
    /// `--cluster host:port`).
    pub fn from_env() -> Result<Security, CliError> {
        let secret = env(SECRET_ENV)
            .map(|s| {
                ClusterSecret::new(s).map_err(|e| CliError::Config(format!("{SECRET_ENV}: {e}")))
            })
            .transpose()?;
        Ok(Security {
            secret,
            password: env(PASSWORD_ENV),
        })
    }

    /// The settings of `config`, overridden by the environment.
    pub fn from_config(config: &ClusterConfig) -> Result<Security, CliError> {
        let mut security = Security::from_env()?;
        if security.secret.is_none()
            && let Some(path) = &config.security.secret_file
        {
            let secret =
                ClusterSecret::from_file(path).map_err(|e| CliError::Config(e.to_string()))?;
            security.secret = Some(secret);
        }
        if security.password.is_none() {
            security
                .password
                .clone_from(&config.security.client_password);
        }
        Ok(security)
    }

    /// As [`Security::from_config`], with a random secret when none is
    /// configured (an embedded cluster: every node is in this process).
    pub fn embedded(config: &ClusterConfig) -> Result<Security, CliError> {
        let mut security = Security::from_config(config)?;
        security.secret.get_or_insert_with(ClusterSecret::random);
        Ok(security)
    }

    /// Puts the secret and password into a node's options.
    pub fn apply(&self, options: &mut NodeOptions) {
        options.secret = self.secret.clone();
        options.client_password = self.password.clone();
    }

    /// Client options presenting the password.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            password: self.password.clone(),
            ..ClientOptions::default()
        }
    }

    /// The warning for a node listening on `addr`, if it deserves one.
    pub fn exposure_warning(&self, addr: SocketAddr) -> Option<String> {
        (self.secret.is_none() && !addr.ip().is_loopback()).then(|| {
            format!(
                "warning: listening on {addr} without a cluster secret: any process that reaches this port can act as a node of the cluster; set [security] secret_file or {SECRET_ENV}"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_read_and_a_short_one_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let mut config = ClusterConfig::default_topology();
        config.security.secret_file = Some(path.clone());
        config.security.client_password = Some("pw".into());
        // The environment is shared by the tests of this binary: only
        // read it when nobody set it.
        if env(SECRET_ENV).is_none() && env(PASSWORD_ENV).is_none() {
            let s = Security::from_config(&config).unwrap();
            assert_eq!(
                s.secret,
                Some(ClusterSecret::new("0123456789abcdef0123").unwrap())
            );
            assert_eq!(s.password.as_deref(), Some("pw"));
            std::fs::write(&path, "short").unwrap();
            assert!(matches!(
                Security::from_config(&config),
                Err(CliError::Config(_))
            ));
            config.security.secret_file = None;
            assert!(Security::embedded(&config).unwrap().secret.is_some());
            assert!(Security::from_config(&config).unwrap().secret.is_none());
        }
    }

    #[test]
    fn exposure_is_warned_only_without_a_secret_beyond_loopback() {
        let none = Security::default();
        let wide: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert!(none.exposure_warning(wide).is_some());
        assert!(none.exposure_warning(local).is_none());
        let secured = Security {
            secret: Some(ClusterSecret::random()),
            password: None,
        };
        assert!(secured.exposure_warning(wide).is_none());
    }
}
