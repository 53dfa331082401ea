//! `portcullis serve` (with its start banner) and `portcullis dev-certs`.

use crate::clock::SystemClock;
use crate::config::ServerConfig;
use crate::server::Running;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Runs a node until SIGINT or SIGTERM.
pub async fn serve(config: ServerConfig) -> Result<(), String> {
    let listeners =
        crate::server::Listeners::bind(&config).map_err(|e| format!("cannot bind: {e}"))?;
    let running = crate::server::start(config, Arc::new(SystemClock), listeners).await?;
    print!("{}", banner(&Banner::of(&running).await));
    crate::server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// What the start banner shows: the listeners, the database and the tenants the node loaded.
#[derive(Debug, Clone)]
pub struct Banner {
    pub main: SocketAddr,
    pub mtls: Option<SocketAddr>,
    pub plain: Option<SocketAddr>,
    pub database: String,
    pub tenants: Vec<BannerTenant>,
    /// The development CA, when the node made or uses one (for the curl hint).
    pub dev_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct BannerTenant {
    pub slug: String,
    pub issuer: String,
    pub token_endpoint: String,
    /// Client ids, sorted; `None` if the database could not list them.
    pub clients: Option<Vec<String>>,
}

impl Banner {
    /// The facts of a running node: its registry's tenants and their clients in the store.
    pub async fn of(running: &Running) -> Self {
        let state = &running.state;
        let mut tenants = Vec::new();
        for t in state.registry.all() {
            tenants.push(BannerTenant {
                slug: t.slug().to_string(),
                issuer: t.spec.issuer.clone(),
                token_endpoint: t.token_endpoint.clone(),
                clients: state.store.client_ids(t.slug()).await.ok(),
            });
        }
        tenants.sort_by(|a, b| a.slug.cmp(&b.slug));
        let ca = state.config.paths.certs_dir.join("ca.pem");
        Self {
            main: running.main_addr,
            mtls: running.mtls_addr,
            plain: running.plain_addr,
            database: state.store.engine().to_string(),
            tenants,
            dev_ca: (state.config.tls.dev_certs && ca.exists()).then_some(ca),
        }
    }
}

/// Client ids named in the banner per tenant; more are counted.
const NAMED_CLIENTS: usize = 6;

/// The text printed when a node starts.
pub fn banner(b: &Banner) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_banner(&mut out, b);
    out
}

fn write_banner(out: &mut String, b: &Banner) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "Portcullis is running.")?;
    writeln!(out, "  main listener   {} (https)", b.main)?;
    if let Some(a) = b.mtls {
        writeln!(
            out,
            "  mTLS listener   {a} (https, asks for client certificates)"
        )?;
    }
    if let Some(a) = b.plain {
        writeln!(
            out,
            "  plain listener  {a} (http, for a TLS-terminating proxy)"
        )?;
    }
    writeln!(out, "  database        {}", b.database)?;
    if b.tenants.is_empty() {
        writeln!(out, "  no tenants loaded (add tenants/<slug>.toml)")?;
    }
    for t in &b.tenants {
        writeln!(out, "  tenant {:<10} issuer {}", t.slug, t.issuer)?;
        match &t.clients {
            Some(ids) if ids.len() > NAMED_CLIENTS => writeln!(
                out,
                "         {:<10} {} clients: {}, …",
                "",
                ids.len(),
                ids.iter()
                    .take(NAMED_CLIENTS)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            Some(ids) if ids.is_empty() => writeln!(out, "         {:<10} no clients", "")?,
            Some(ids) => writeln!(
                out,
                "         {:<10} {} client{}: {}",
                "",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                ids.join(", ")
            )?,
            None => {}
        }
    }
    if let (Some(ca), Some(t)) = (&b.dev_ca, b.tenants.first()) {
        writeln!(out)?;
        writeln!(out, "Get a token (client_credentials):")?;
        writeln!(
            out,
            "  curl --cacert {} -u CLIENT_ID:SECRET -d grant_type=client_credentials {}",
            ca.display(),
            t.token_endpoint
        )?;
    }
    writeln!(out)
}

/// Writes the development CA, server and demo client certificates, the demo client key and the
/// demo workload key into the certs directory.
pub fn dev_certs(config: &ServerConfig, force: bool) -> Result<(), String> {
    let dir = &config.paths.certs_dir;
    let jwt = crate::devcerts::ensure_demo_jwt_key(dir, false)?;
    let workload = crate::devcerts::ensure_demo_workload_key(dir, false)?;
    if crate::devcerts::ensure(dir, force)? {
        println!(
            "wrote development certificates, the demo client key acme-jwt-key.pem and the demo \
             workload key demo-workload-key.pem to {}",
            dir.display()
        );
    } else if jwt || workload {
        let written: Vec<&str> = [
            (jwt, "the demo client key acme-jwt-key.pem"),
            (workload, "the demo workload key demo-workload-key.pem"),
        ]
        .into_iter()
        .filter_map(|(wrote, what)| wrote.then_some(what))
        .collect();
        println!("wrote {} to {}", written.join(" and "), dir.display());
    } else {
        println!(
            "development certificates already exist in {} (use --force to replace them)",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(slug: &str, clients: &[&str]) -> BannerTenant {
        BannerTenant {
            slug: slug.into(),
            issuer: format!("https://login.example/{slug}"),
            token_endpoint: format!("https://login.example/{slug}/connect/token"),
            clients: Some(clients.iter().map(|c| c.to_string()).collect()),
        }
    }

    fn facts(tenants: Vec<BannerTenant>) -> Banner {
        Banner {
            main: "127.0.0.1:8443".parse().unwrap(),
            mtls: None,
            plain: None,
            database: "sqlite".into(),
            tenants,
            dev_ca: None,
        }
    }

    #[test]
    fn the_banner_lists_every_loaded_tenant_with_its_issuer_and_clients() {
        let text = banner(&facts(vec![
            tenant("globex", &["globex-m2m", "globex-web"]),
            tenant("initech", &["tps"]),
        ]));
        assert!(
            text.contains("tenant globex     issuer https://login.example/globex"),
            "{text}"
        );
        assert!(text.contains("2 clients: globex-m2m, globex-web"), "{text}");
        assert!(
            text.contains("tenant initech    issuer https://login.example/initech"),
            "{text}"
        );
        assert!(text.contains("1 client: tps"), "{text}");
    }

    #[test]
    fn the_banner_names_no_demo_client_or_secret() {
        let mut b = facts(vec![tenant("acme", &["acme-m2m"])]);
        b.dev_ca = Some(PathBuf::from("/srv/certs/ca.pem"));
        let text = banner(&b);
        assert!(!text.contains("acme-m2m-secret"), "{text}");
        assert!(
            text.contains("-u CLIENT_ID:SECRET -d grant_type=client_credentials https://login.example/acme/connect/token"),
            "{text}"
        );
    }

    #[test]
    fn a_long_client_list_is_counted_and_cut() {
        let ids: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let text = banner(&facts(vec![tenant("big", &refs)]));
        assert!(
            text.contains("9 clients: c0, c1, c2, c3, c4, c5, …"),
            "{text}"
        );
        assert!(!text.contains("c6"), "{text}");
    }

    #[test]
    fn a_node_without_tenants_says_so() {
        assert!(banner(&facts(Vec::new())).contains("no tenants loaded"));
    }
}
