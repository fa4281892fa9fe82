//! How dmarcpipe reaches PostgreSQL: the connect options made from `DATABASE_URL`.
//!
//! sqlx's default `sslmode` is `prefer`: every connection first asks the server for TLS and,
//! when it agrees (Debian's PostgreSQL has `ssl = on`), builds a rustls client and does a full
//! handshake, which cost most of the 90 ms a connection took. On a loopback address or a Unix
//! socket TLS protects nothing (the bytes never leave the machine), so when neither the URL nor
//! the environment asks for a TLS mode, such connections are made in plain text. A URL or a
//! `PGSSLMODE` that names any mode keeps it, and a remote host keeps `prefer`.

use std::net::IpAddr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The connect options for `url`, with plain text on loopback and Unix sockets unless TLS is
/// asked for (see the module documentation). `PGSSLMODE` is read from the environment.
pub(crate) fn options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let environment = std::env::var("PGSSLMODE").ok();
    Ok(if plain_text_suffices(url, &options, environment.as_deref()) {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

/// Whether a connection to what `options` names may skip TLS: nobody asked for a TLS mode
/// (no `sslmode` or other TLS parameter in `url`, no `PGSSLMODE`) and the server is on this
/// machine (a Unix socket, `localhost`, or a loopback address).
pub(crate) fn plain_text_suffices(url: &str, options: &PgConnectOptions, environment_sslmode: Option<&str>) -> bool {
    if environment_sslmode.is_some_and(|mode| !mode.trim().is_empty()) || asks_for_tls(url) {
        return false;
    }
    options.get_socket().is_some() || is_local_host(options.get_host())
}

/// Whether the URL's query names an `sslmode` or any other TLS parameter (root certificate,
/// client certificate or key): whoever wrote it chose, and their choice stands.
fn asks_for_tls(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').filter_map(|parameter| parameter.split('=').next()).any(|key| {
        let key = key.to_ascii_lowercase().replace('-', "");
        key.starts_with("ssl")
    })
}

/// A Unix socket directory, `localhost`, or a loopback address (IPv4 127/8, IPv6 `::1`).
fn is_local_host(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(url: &str, environment: Option<&str>) -> bool {
        let options: PgConnectOptions = url.parse().unwrap_or_else(|err| panic!("{url}: {err}"));
        plain_text_suffices(url, &options, environment)
    }

    #[test]
    fn local_servers_are_reached_in_plain_text_unless_tls_is_asked_for() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.2/x",
            "postgres://postgres@localhost/x",
            "postgres://postgres@LOCALHOST:5433/x",
            "postgres://postgres@[::1]:5432/x",
            "postgres:///x?host=/var/run/postgresql",
            "postgres://postgres@localhost/x?host=/work/.pgdata&application_name=a",
            "postgres://%2Fvar%2Frun%2Fpostgresql/x",
        ] {
            assert!(decided(url, None), "{url} should be plain text");
        }
    }

    #[test]
    fn a_chosen_mode_or_a_remote_host_keeps_tls() {
        for url in [
            "postgres://postgres@127.0.0.1/x?sslmode=prefer",
            "postgres://postgres@127.0.0.1/x?sslmode=require",
            "postgres://postgres@localhost/x?application_name=a&sslmode=disable",
            "postgres://postgres@localhost/x?ssl-mode=verify-full",
            "postgres://postgres@localhost/x?sslrootcert=/etc/ca.pem",
            "postgres:///x?host=/var/run/postgresql&sslmode=require",
            "postgres://postgres@db.example/x",
            "postgres://postgres@10.0.0.5/x",
            "postgres://postgres@[2001:db8::1]/x",
            "postgres://postgres@localhost.example/x",
        ] {
            assert!(!decided(url, None), "{url} should keep sqlx's TLS decision");
        }
        assert!(!decided("postgres://postgres@127.0.0.1/x", Some("require")));
        assert!(!decided("postgres:///x?host=/var/run/postgresql", Some("prefer")));
        assert!(decided("postgres://postgres@127.0.0.1/x", Some("")));
    }

    #[test]
    fn the_options_say_disable_only_when_plain_text_suffices() -> Result<(), sqlx::Error> {
        assert!(matches!(options("postgres://postgres@127.0.0.1/x")?.get_ssl_mode(), PgSslMode::Disable));
        assert!(matches!(
            options("postgres://postgres@127.0.0.1/x?sslmode=require")?.get_ssl_mode(),
            PgSslMode::Require
        ));
        assert!(!matches!(options("postgres://postgres@db.example/x")?.get_ssl_mode(), PgSslMode::Disable));
        Ok(())
    }
}
