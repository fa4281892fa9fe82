//! `make bench-smtp`: `dmarcpipe serve` on loopback, N small report messages sent by C
//! concurrent clients (one SMTP session per message, as reports arrive from many senders),
//! every one of them acknowledged with `250`; then the database is checked: every message
//! stored exactly once.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::testkit::{Rng, gzip, mail_with_attachment, smtp_data};

use crate::{create_database, drop_database, psql_value, report};

const RECIPIENT: &str = "reports@dmarc.example";

/// The messages: one small report each (1-5 records, gzip attachment), all distinct.
pub(crate) fn messages(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5317_7b01);
    (0..count)
        .map(|serial| {
            let records = 1 + rng.below(5);
            let report = report(&mut rng, serial as u64, records);
            let name = format!("{}.xml.gz", report.file_stem());
            let subject = format!("Report domain: {} Submitter: {}", report.domain, report.org_name);
            mail_with_attachment(&subject, &name, "application/gzip", &gzip(report.xml().as_bytes()))
        })
        .collect()
}

/// The message as DATA sends it, with the final dot.
pub(crate) fn data_of(message: &[u8]) -> Vec<u8> {
    let mut data = smtp_data(message);
    data.extend_from_slice(b".\r\n");
    data
}

/// One SMTP session delivering one message; the reply to its end of DATA.
pub(crate) fn deliver(server: SocketAddr, data: &[u8], client: usize) -> Result<String> {
    let stream = TcpStream::connect(server).context("connecting")?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut reply = || -> Result<String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                bail!("the server closed the connection");
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_owned());
            }
        }
    };
    let expect = |reply: String, code: &str| -> Result<()> {
        if reply.starts_with(code) { Ok(()) } else { bail!("expected {code}, got `{reply}`") }
    };
    expect(reply()?, "220")?;
    writer.write_all(format!("EHLO client{client}.bench.example\r\n").as_bytes())?;
    expect(reply()?, "250")?;
    // PIPELINING: MAIL, RCPT and DATA in one write.
    writer.write_all(
        format!("MAIL FROM:<dmarc@client{client}.bench.example>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n").as_bytes(),
    )?;
    expect(reply()?, "250")?;
    expect(reply()?, "250")?;
    expect(reply()?, "354")?;
    writer.write_all(data)?;
    let done = reply()?;
    writer.write_all(b"QUIT\r\n")?;
    let _ = reply();
    Ok(done)
}

/// `dmarcpipe serve` on a loopback port; returns the child and its SMTP address. Every client
/// comes from 127.0.0.1 here, so the per-address session cap is raised to the client count.
pub(crate) fn start_server(binary: &Path, url: &str, clients: usize) -> Result<(Child, SocketAddr)> {
    let config = std::env::temp_dir().join(format!("dmarcpipe-bench-smtp-{}.toml", std::process::id()));
    std::fs::write(&config, format!("[smtp]\nmax_sessions = {0}\nmax_sessions_per_ip = {0}\n", clients.max(100)))?;
    let mut child = Command::new(binary)
        .env("DATABASE_URL", url)
        .env("DMARCPIPE_NO_ENRICH", "1")
        .env("DMARCPIPE_CONFIG", &config)
        .env("DMARCPIPE_NO_ENRICH", "1")
        .env("RUST_LOG", "info,sqlx=warn")
        .args(["serve", "--smtp-listen", "127.0.0.1:0", "--smtp-recipient", RECIPIENT, "--hostname", "bench.example"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting dmarcpipe serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (found, address) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(address) = rest.split(' ').next()
            {
                let _ = found.send(address.to_owned());
            }
            if line.contains(" ERROR ") || line.contains(" WARN ") {
                eprintln!("{line}");
            }
        }
    });
    let address = address.recv_timeout(Duration::from_secs(60)).context("the server did not start");
    let _ = std::fs::remove_file(&config);
    let address = address?;
    Ok((child, address.parse()?))
}

/// `VmHWM` of a process, in bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?.to_owned();
            line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

pub fn run(binary: &Path, count: usize, clients: usize) -> Result<()> {
    let (admin, database, url) = create_database(binary, "smtp")?;
    let result = (|| -> Result<()> {
        let messages: Arc<Vec<Vec<u8>>> = Arc::new(messages(count).iter().map(|m| data_of(m)).collect());
        let (mut server, address) = start_server(binary, &url, clients)?;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                let (messages, next) = (messages.clone(), next.clone());
                std::thread::spawn(move || -> Result<usize> {
                    let mut sent = 0;
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(data) = messages.get(index) else { return Ok(sent) };
                        let reply = deliver(address, data, client).with_context(|| format!("message {index}"))?;
                        if !reply.starts_with("250 2.0.0 Stored") {
                            bail!("message {index} not stored: {reply}");
                        }
                        sent += 1;
                    }
                })
            })
            .collect();
        let mut accepted = 0;
        for worker in workers {
            accepted += worker.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        let seconds = started.elapsed().as_secs_f64();
        let rss = peak_rss(server.id());
        Command::new("kill").args(["-TERM", &server.id().to_string()]).status()?;
        let status = server.wait()?;
        if !status.success() {
            bail!("dmarcpipe serve exited with {status}");
        }
        let stored: usize = psql_value(&url, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'")?.parse()?;
        let reports: usize =
            psql_value(&url, "SELECT count(DISTINCT (org_name, report_id)) FROM dmarc_reports")?.parse()?;
        let rows: usize = psql_value(&url, "SELECT count(*) FROM dmarc_reports")?.parse()?;
        println!();
        println!(
            "{:<44} {:>9} {:>8} {:>8} {:>10} {:>9}",
            "phase", "messages", "clients", "seconds", "messages/s", "peak RSS"
        );
        println!(
            "{:<44} {:>9} {:>8} {:>8.2} {:>10.0} {:>6.0} MB",
            "SMTP, one session per small report message",
            accepted,
            clients,
            seconds,
            accepted as f64 / seconds,
            rss as f64 / (1 << 20) as f64
        );
        println!(
            "\n(every message acknowledged with 250 after its commit; the database holds {stored} stored inputs and \
             {rows} reports, {reports} distinct)"
        );
        if accepted != count || stored != count || rows != count || reports != count {
            bail!(
                "count check failed: {count} sent, {accepted} accepted, {stored} inputs stored, {rows} reports ({reports} distinct)"
            );
        }
        println!("count check: every message stored exactly once");
        Ok(())
    })();
    drop_database(&admin, &database)?;
    result
}
