use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use socketio_exporter::{Cli, Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Exit code for an invalid configuration (clap uses 2 for invalid flags as well).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    quiet_panics();

    let mut config = match Config::load_for(&cli.config, cli.listen) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The web config is checked here too, so that a bad one is a config error (exit 2).
    let web_summary = match &cli.web_config_file {
        Some(path) => match socketio_exporter::check_web_config(path) {
            Ok(summary) => summary,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => "web config: none (plain HTTP, no basic auth)".to_owned(),
    };
    config.web_config_file = cli.web_config_file.clone();
    if cli.check_config {
        println!(
            "{}: ok\n{}\n{web_summary}",
            cli.config.display(),
            config.summary()
        );
        return ExitCode::SUCCESS;
    }

    // rustls needs one process-wide crypto provider; ring keeps the binary small and static.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(socketio_exporter::run(config, &cli));
    // A final OTLP export still blocked on an unresponsive collector must not hold the
    // exit: run() already waited as long as the shutdown deadline allows.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// A panic is a bug: the task it hit is restarted (or, in the sync loop, the process exits
/// non-zero), and the failure is counted and logged where it is caught. The panic itself is
/// logged once in full, as a log event rather than raw stderr; repeats go to debug.
fn quiet_panics() {
    static PANICKED: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        if PANICKED.swap(true, Ordering::Relaxed) {
            tracing::debug!("panic: {info}");
        } else {
            tracing::error!("panic: {info}");
        }
    }));
}
