//! In-order output to a file, stdout or a FIFO, with a bounded queue and backpressure.
//!
//! The peer hands verified bytes over in order with [`Sink::push`]; the sink writes them out
//! with [`Sink::flush`]. Pipes and FIFOs are written **non-blocking**: when the reader (a media
//! player) is slower than the download, the pipe fills, writes return `WouldBlock`, bytes wait
//! in the queue, and once [`Sink::queued`] reaches the cap [`Sink::push`] refuses more — the
//! caller then stops requesting chunks until the player catches up. Memory stays bounded by
//! `cap + one push`.
//!
//! Regular files are written with ordinary (blocking) writes; they never block for long.
//!
//! A FIFO with no reader yet cannot be opened non-blocking for writing (`ENXIO`); the sink then
//! waits, retrying the open on each [`Sink::flush`] (call it from a timer). A reader that goes
//! away (`EPIPE`) ends the sink with [`SinkError::ReaderGone`].
//!
//! For a pipe the caller registers the sink with mio via [`Sink::update_interest`], which keeps
//! `WRITABLE` interest registered only while bytes are queued (STYLE 21).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};
use mio::unix::pipe::Sender;
use mio::{Interest, Registry, Token};

/// Segments written per `writev` call.
const MAX_IOVECS: usize = 64;

/// What an output argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// `-`: standard output.
    Stdout,
    /// A regular file (or a path that does not exist yet): seekable, chunks can go straight
    /// to their offsets.
    File(PathBuf),
    /// A FIFO, character device or socket: bytes must be written in order.
    Stream(PathBuf),
}

/// An in-order byte sink with a bounded queue.
#[derive(Debug)]
pub struct Sink {
    name: String,
    target: Target,
    queue: VecDeque<Bytes>,
    queued: usize,
    cap: usize,
    written: u64,
    registered: bool,
}

#[derive(Debug)]
enum Target {
    /// Blocking writes (regular file, terminal).
    Blocking(File),
    /// Non-blocking writes (pipe, FIFO).
    Pipe(Sender),
    /// A FIFO whose reader has not opened it yet.
    AwaitingReader(PathBuf),
}

/// Why output failed; the message names the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The target could not be opened.
    #[error("{name}: cannot open: {source}")]
    Open {
        /// The target.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// A write failed (disk full, I/O error).
    #[error("{name}: write failed after {written} bytes: {source}")]
    Write {
        /// The target.
        name: String,
        /// Bytes successfully written before the failure.
        written: u64,
        /// The OS error.
        source: io::Error,
    },
    /// The reader of the pipe closed it.
    #[error("{name}: the reader closed the pipe after {written} bytes")]
    ReaderGone {
        /// The target.
        name: String,
        /// Bytes delivered.
        written: u64,
    },
    /// [`Sink::push`] while the queue is at its cap (the caller must wait for `flush`).
    #[error("{name}: output queue full ({queued} bytes queued, cap {cap})")]
    Full {
        /// The target.
        name: String,
        /// Bytes queued.
        queued: usize,
        /// The cap.
        cap: usize,
    },
}

impl OutputKind {
    /// Classifies an output argument (`-` is stdout).
    pub fn of(arg: &Path) -> Self {
        if arg.as_os_str() == "-" {
            return Self::Stdout;
        }
        match std::fs::metadata(arg) {
            Ok(m) if !m.is_file() && !m.is_dir() => Self::Stream(arg.to_owned()),
            _ => Self::File(arg.to_owned()),
        }
    }
}

impl Sink {
    /// Opens the output `kind` names, queueing at most about `cap` bytes.
    pub fn open(kind: &OutputKind, cap: usize) -> Result<Self, SinkError> {
        match kind {
            OutputKind::Stdout => Self::stdout(cap),
            OutputKind::File(p) => Self::file(p, cap),
            OutputKind::Stream(p) => Self::stream(p, cap),
        }
    }

    /// Standard output: non-blocking if it is a pipe, FIFO or socket, else blocking.
    ///
    /// Non-blocking mode is a property of the open file description, which a shell may share
    /// with other processes; it is switched back to blocking when the sink is dropped.
    pub fn stdout(cap: usize) -> Result<Self, SinkError> {
        let name = "stdout".to_owned();
        let open_err = |source| SinkError::Open { name: name.clone(), source };
        let fd = io::stdout().as_fd().try_clone_to_owned().map_err(open_err)?;
        let file = File::from(fd);
        let ft = file.metadata().map_err(open_err)?.file_type();
        let target = if ft.is_fifo() || ft.is_socket() {
            let tx = Sender::from(std::os::fd::OwnedFd::from(file));
            tx.set_nonblocking(true).map_err(open_err)?;
            Target::Pipe(tx)
        } else {
            Target::Blocking(file)
        };
        Ok(Self::with(name, target, cap))
    }

    /// Creates (or truncates) a regular file.
    pub fn file(path: &Path, cap: usize) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|source| SinkError::Open { name: name.clone(), source })?;
        Ok(Self::with(name, Target::Blocking(file), cap))
    }

    /// Opens a FIFO (or device) for non-blocking writes; if a FIFO has no reader yet, the
    /// sink waits for one (see [`Sink::awaiting_reader`]).
    pub fn stream(path: &Path, cap: usize) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let mut sink = Self::with(name, Target::AwaitingReader(path.to_owned()), cap);
        sink.try_open()?;
        Ok(sink)
    }

    /// Queues bytes for output; refuses with [`SinkError::Full`] once the cap is reached.
    ///
    /// The queue may exceed the cap by at most the last accepted push.
    pub fn push(&mut self, bytes: Bytes) -> Result<(), SinkError> {
        if !self.has_room() {
            return Err(SinkError::Full { name: self.name.clone(), queued: self.queued, cap: self.cap });
        }
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.queue.push_back(bytes);
        }
        Ok(())
    }

    /// Writes queued bytes until the queue is empty or the pipe is full; returns the number
    /// of bytes written by this call. Retries a pending FIFO open first.
    pub fn flush(&mut self) -> Result<usize, SinkError> {
        if let Target::AwaitingReader(_) = self.target {
            self.try_open()?;
        }
        let mut total = 0;
        while !self.queue.is_empty() {
            let slices: Vec<IoSlice<'_>> =
                self.queue.iter().take(MAX_IOVECS).map(|b| IoSlice::new(b)).collect();
            let result = match &mut self.target {
                Target::Blocking(f) => f.write_vectored(&slices),
                Target::Pipe(tx) => tx.write_vectored(&slices),
                Target::AwaitingReader(_) => return Ok(total),
            };
            match result {
                Ok(0) => {
                    let source = io::Error::new(io::ErrorKind::WriteZero, "wrote zero bytes");
                    return Err(self.write_error(source));
                }
                Ok(n) => {
                    self.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(SinkError::ReaderGone { name: self.name.clone(), written: self.written });
                }
                Err(e) => return Err(self.write_error(e)),
            }
        }
        Ok(total)
    }

    /// Registers or deregisters `WRITABLE` interest so it is held exactly while bytes are
    /// queued for a pipe. Call after every `push`/`flush`; does nothing for blocking targets.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let Target::Pipe(tx) = &mut self.target else { return Ok(()) };
        let want = !self.queue.is_empty();
        if want && !self.registered {
            registry.register(tx, token, Interest::WRITABLE)?;
            self.registered = true;
        } else if !want && self.registered {
            registry.deregister(tx)?;
            self.registered = false;
        }
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether [`Sink::push`] would accept more (the caller keeps requesting while true).
    pub fn has_room(&self) -> bool {
        self.queued < self.cap
    }

    /// Bytes written to the target so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether a FIFO is still waiting for its reader.
    pub fn awaiting_reader(&self) -> bool {
        matches!(self.target, Target::AwaitingReader(_))
    }

    /// The target's name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn with(name: String, target: Target, cap: usize) -> Self {
        Self {
            name,
            target,
            queue: VecDeque::new(),
            queued: 0,
            cap: cap.max(1),
            written: 0,
            registered: false,
        }
    }

    fn try_open(&mut self) -> Result<(), SinkError> {
        let Target::AwaitingReader(path) = &self.target else { return Ok(()) };
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(file) => {
                let tx = Sender::from(std::os::fd::OwnedFd::from(file));
                self.target = Target::Pipe(tx);
                Ok(())
            }
            // A FIFO without a reader: wait for one.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(source) => Err(SinkError::Open { name: self.name.clone(), source }),
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.written += n as u64;
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else { break };
            if n >= front.len() {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    fn write_error(&self, source: io::Error) -> SinkError {
        SinkError::Write { name: self.name.clone(), written: self.written, source }
    }
}

/// Points fd 1 at `/dev/null`, closing this process's end of whatever stdout was (a pipe's
/// reader then sees end of stream), while later writes to stdout still succeed.
pub fn close_stdout() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok(())
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Target::Pipe(tx) = &self.target {
            // Give the shared file description back in the mode we found it (best effort).
            let _ = tx.set_nonblocking(false);
        }
    }
}

#[cfg(test)]
mod tests;
