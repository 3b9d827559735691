//! `rafter exec`: runs a command in a container, its stdio streamed both ways.
//!
//! ```text
//!   stdin (-i) ─► ExecRequest{stdin} ─┐                 ┌─► agent ─► the container
//!                                      ▼                 │
//!   rafter exec ─► any master (Resources.Exec, pods/exec) ┘
//!        ▲                                                │
//!        └── stdout / stderr bytes, then the exit code ◄──┘
//! ```
//!
//! The process exits with the command's exit code. `-t` asks for a terminal and, only
//! when the local stdin is one, puts it in raw mode until the command ends (restored
//! on every exit path), and sends the terminal's size at the start and after each
//! change (SIGWINCH). Without `-i` nothing is read from
//! stdin. The session is opened with failover between masters; once it runs, a broken
//! stream ends the command with an error (it is not resumed elsewhere).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use rafter_proto::api::{
    exec_request, exec_response, ExecRequest, ExecResponse, ExecStart, TerminalSize,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::session::{GlobalArgs, Session};

/// `rafter exec`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter exec web-7d9f-abcde -- ls /\n  rafter exec -it web-7d9f-abcde -c app -- sh\n  echo hello | rafter exec -i web-7d9f-abcde -- cat"
)]
pub struct ExecArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pod: String,
    /// The container [default: the pod's only container].
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Allocate a terminal for the command.
    #[arg(short = 't', long)]
    tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The local terminal in raw mode, restored when dropped.
pub(crate) struct RawMode(pub(crate) Option<nix::sys::termios::Termios>);

impl RawMode {
    pub(crate) fn enter(wanted: bool) -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        if !wanted || !stdin.is_terminal() {
            return RawMode(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Sends the local terminal's size now and after each change (SIGWINCH) as `message`s,
/// until `input` closes.
pub(crate) fn send_terminal_sizes<T, F>(input: tokio::sync::mpsc::Sender<T>, message: F)
where
    T: Send + 'static,
    F: Fn(TerminalSize) -> T + Send + 'static,
{
    tokio::spawn(async move {
        let mut changes =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        loop {
            if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
                let size = TerminalSize {
                    width: u32::from(size.ws_col),
                    height: u32::from(size.ws_row),
                };
                if input.send(message(size)).await.is_err() {
                    return;
                }
            }
            let Some(changes) = changes.as_mut() else {
                return;
            };
            if changes.recv().await.is_none() {
                return;
            }
        }
    });
}

/// Sends the local stdin as `message(Some(bytes))`s, then `message(None)` at its end.
/// Writes the session's output to this process's stdout and stderr as it comes, and
/// answers the exit code it ends with (its message printed once the terminal is back in
/// its own mode). `what` names the stream in errors.
pub(crate) async fn relay_output(
    output: &mut tonic::Streaming<ExecResponse>,
    raw: RawMode,
    what: &str,
) -> anyhow::Result<i32> {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        let message = output.message().await.with_context(|| what.to_owned())?;
        match message.and_then(|m| m.msg) {
            Some(exec_response::Msg::Stdout(data)) => {
                stdout.write_all(&data).await?;
                stdout.flush().await?;
            }
            Some(exec_response::Msg::Stderr(data)) => {
                stderr.write_all(&data).await?;
                stderr.flush().await?;
            }
            Some(exec_response::Msg::Exit(exit)) => {
                if !exit.message.is_empty() {
                    drop(raw);
                    eprintln!("{}", exit.message);
                }
                return Ok(exit.code);
            }
            None => bail!("{what} ended without an exit status"),
        }
    }
}

pub(crate) fn send_stdin<T, F>(input: tokio::sync::mpsc::Sender<T>, message: F)
where
    T: Send + 'static,
    F: Fn(Option<Vec<u8>>) -> T + Send + 'static,
{
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let read = match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let last = read.is_none();
            if input.send(message(read)).await.is_err() || last {
                return;
            }
        }
    });
}

/// Runs `rafter exec`; ends the process with the command's exit code.
pub fn run(args: ExecArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = match args.pod.split_once('/') {
        Some(("pod" | "pods" | "po", name)) => name.to_owned(),
        Some(_) => bail!("exec runs in pods: give NAME or pod/NAME"),
        None => args.pod.clone(),
    };
    let session = Session::connect(globals)?;
    let start = ExecStart {
        namespace: session.namespace().to_owned(),
        name: name.clone(),
        container: args.container.clone().unwrap_or_default(),
        command: args.command.clone(),
        stdin: args.stdin,
        tty: args.tty,
    };
    let code = session.block_on(async {
        let mut exec = session
            .client()
            .exec(start)
            .await
            .with_context(|| format!("exec in pod {name:?}"))?;
        let raw = RawMode::enter(args.tty);
        if raw.0.is_some() {
            send_terminal_sizes(exec.input.clone(), |size| ExecRequest {
                msg: Some(exec_request::Msg::Resize(size)),
            });
        }
        if args.stdin {
            send_stdin(exec.input.clone(), |read| ExecRequest {
                msg: Some(match read {
                    Some(data) => exec_request::Msg::Stdin(data),
                    None => exec_request::Msg::StdinClose(true),
                }),
            });
        }
        relay_output(
            &mut exec.output,
            raw,
            &format!("the exec stream of pod {name:?}"),
        )
        .await
    })?;
    // A reader still blocked on the local stdin must not keep the process alive.
    std::process::exit(code);
}
