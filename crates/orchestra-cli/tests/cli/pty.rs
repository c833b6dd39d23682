//! The real binary in a real pseudo-terminal: what a human at a terminal sees and types.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// How long any expected text may take to appear.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// `orchestra` running in a pseudo-terminal (stdin, stdout and stderr are its terminal).
pub(crate) struct Term {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn MasterPty + Send>,
    output: Arc<Mutex<String>>,
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
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_orchestra"));
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env_clear();
        cmd.env("HOME", home);
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let out = Arc::clone(&output);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with an error (EIO) once the child and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                out.lock().unwrap().push_str(&text);
            }
        });
        Term {
            child,
            writer,
            _master: pair.master,
            output,
            seen: 0,
        }
    }

    /// Everything printed so far.
    pub(crate) fn screen(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until `text` is printed (after what earlier `expect`s matched).
    pub(crate) fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(i) = out[self.seen..].find(text) {
                    self.seen += i + text.len();
                    return;
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "`{text}` did not appear within {PATIENCE:?}; the terminal shows:\n{}",
                    self.screen()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
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

    /// Waits for the exit and returns the exit code (fails after [`PATIENCE`]).
    pub(crate) fn wait(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain what is left.
                thread::sleep(Duration::from_millis(50));
                return status.exit_code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "orchestra did not exit within {PATIENCE:?}; the terminal shows:\n{}",
                    self.screen()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
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
