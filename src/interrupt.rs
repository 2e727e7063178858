//! Signals. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop starflow the same way: every output being written is aborted (its
//! staged bytes removed), then starflow exits 130. In the interactive shell SIGINT stops only the running statement.
//!
//! Writers race their work against [`interrupted`] and clean up themselves; a [`Staged`] guard counts the outputs
//! whose clean-up is still pending. Whatever else is running when a stopping signal arrives (loading models,
//! planning) has nothing to clean up, so once no output is staged the process exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default)]
struct Signals {
    /// Signals received so far.
    count: u64,
    /// A signal that stops the process has arrived.
    stop: bool,
}

fn channel() -> &'static watch::Sender<Signals> {
    static CHANNEL: OnceLock<watch::Sender<Signals>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::Sender::new(Signals::default()))
}

/// In the interactive shell SIGINT stops the running statement, not the shell.
static SIGINT_STOPS_STATEMENT: AtomicBool = AtomicBool::new(false);
/// Outputs being written whose staged bytes are not yet removed or completed.
static STAGED: AtomicUsize = AtomicUsize::new(0);
/// The longest a stopping signal waits for writers to remove their staged outputs.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(30);

/// Handle SIGINT, SIGTERM and SIGHUP from now on (inside the runtime, before anything is written).
pub fn install() -> std::io::Result<()> {
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        let mut signals = signal(kind)?;
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                let stop = kind != SignalKind::interrupt() || !SIGINT_STOPS_STATEMENT.load(Ordering::SeqCst);
                channel().send_modify(|s| {
                    s.count += 1;
                    s.stop |= stop;
                });
                if stop {
                    // Off the runtime: the writers' clean-up must keep running meanwhile.
                    std::thread::spawn(exit_when_cleaned_up);
                }
            }
        });
    }
    Ok(())
}

/// Stop the statements running now, as SIGINT does in the shell: every [`interrupted`] future made before this call
/// resolves, later ones wait for the next call or signal. For programs that handle Ctrl-C themselves (the Python
/// module), whose writers then clean up as they do on a signal.
pub fn interrupt_statements() {
    channel().send_modify(|s| s.count += 1);
}

pub fn sigint_stops_statement(yes: bool) {
    SIGINT_STOPS_STATEMENT.store(yes, Ordering::SeqCst);
}

fn exit_when_cleaned_up() {
    let deadline = Instant::now() + CLEAN_UP_LIMIT;
    while STAGED.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    exit_interrupted();
}

/// Resolves when a signal arrives after this call, or at once if the process is stopping.
pub fn interrupted() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = channel().subscribe();
    let start = signals.borrow().count;
    async move {
        if signals.wait_for(|s| s.stop || s.count != start).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Say "interrupted" and exit 130, once, whichever thread gets here first. The exit skips C-level exit handlers:
/// ONNX Runtime's would tear its environment down under flows still running and log errors on stderr.
pub fn exit_interrupted() -> ! {
    static EXITING: Mutex<()> = Mutex::new(());
    let _once = EXITING.lock();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!("starflow: interrupted");
    // SAFETY: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(130) }
}

/// An output being written: while one exists, a stopping signal waits (up to 30 s) for it to be cleaned up.
#[derive(Debug)]
pub struct Staged(());

impl Staged {
    pub fn new() -> Self {
        STAGED.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        STAGED.fetch_sub(1, Ordering::SeqCst);
    }
}
