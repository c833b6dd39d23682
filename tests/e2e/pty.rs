//! The real binary in a real pseudo-terminal: what a human at a terminal sees and types.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

use super::common::PATIENCE;

/// What the terminal showed, filled by the reader thread; the condvar is told of every change.
#[derive(Debug, Default)]
struct Screen {
    text: String,
    /// The terminal is gone: the process and every process that held it have exited.
    closed: bool,
}

/// `orchestra` running in a pseudo-terminal (stdin, stdout and stderr are its terminal).
pub(crate) struct Term {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn MasterPty + Send>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// How far [`Term::expect`] has read.
    seen: usize,
}

impl Term {
    /// Starts `orchestra ARGS` in `cwd` with only `HOME` set.
    pub(crate) fn spawn(cwd: &Path, home: &Path, args: &[&str]) -> Term {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 50,
                cols: 200,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(crate::binary::orchestra_bin());
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env_clear();
        cmd.env("HOME", home);
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let shared = Arc::clone(&screen);
        thread::spawn(move || {
            let (screen, changed) = &*shared;
            let mut buf = [0u8; 4096];
            // Ends with an error (EIO) once the child and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                screen.lock().unwrap().text.push_str(&text);
                changed.notify_all();
            }
            screen.lock().unwrap().closed = true;
            changed.notify_all();
        });
        Term {
            child,
            writer,
            _master: pair.master,
            screen,
            seen: 0,
        }
    }

    /// Everything printed so far.
    pub(crate) fn screen(&self) -> String {
        self.screen.0.lock().unwrap().text.clone()
    }

    /// Waits (at most [`PATIENCE`]) until `done` holds for the screen; on a timeout, kills the
    /// process and fails saying what was awaited and what the terminal shows.
    fn wait_for_screen(&mut self, what: &str, mut done: impl FnMut(&Screen) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let (lock, changed) = &*self.screen;
        let mut screen: MutexGuard<'_, Screen> = lock.lock().unwrap();
        while !done(&screen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let shown = screen.text.clone();
                drop(screen);
                let _ = self.child.kill();
                panic!("{what} within {PATIENCE:?}; the terminal shows:\n{shown}");
            }
            screen = changed.wait_timeout(screen, left).unwrap().0;
        }
    }

    /// Waits until `text` is printed (after what earlier `expect`s matched).
    pub(crate) fn expect(&mut self, text: &str) {
        let from = self.seen;
        let mut found = None;
        self.wait_for_screen(&format!("`{text}` did not appear"), |screen| {
            found = screen.text[from..].find(text);
            found.is_some()
        });
        self.seen = from + found.unwrap_or(0) + text.len();
    }

    /// Types `line` and Enter.
    pub(crate) fn line(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        self.writer.flush().unwrap();
    }

    /// Types a control character: `'c'` is Ctrl-C, `'d'` Ctrl-D.
    pub(crate) fn ctrl(&mut self, key: char) {
        let byte = (key.to_ascii_lowercase() as u8) - b'a' + 1;
        self.writer.write_all(&[byte]).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits for the exit and returns the exit code (fails after [`PATIENCE`]). The terminal
    /// closes when the process has exited (and whatever it started that held the terminal):
    /// by then everything it printed has been read.
    pub(crate) fn wait(&mut self) -> u32 {
        self.wait_for_screen(
            "the terminal did not close (orchestra did not exit)",
            |screen| screen.closed,
        );
        self.child.wait().unwrap().exit_code()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
