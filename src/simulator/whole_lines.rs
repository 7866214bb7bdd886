//! A writer that hands its inner writer whole lines only, in batches.
//!
//! Several processes of one simulated process tree write their ground truth
//! into the same file, each through its own descriptor opened with
//! `O_APPEND`. On Linux one `write(2)` to a regular file is applied whole
//! (under the inode lock) at the end of the file, so lines from different
//! processes can only interleave between writes. Writing whole lines per
//! `write(2)`, in batches of up to [`BATCH`] bytes, keeps every line intact
//! and costs one system call per batch rather than per event. (A `BufWriter`
//! would cut lines at its buffer boundary.)

use std::io::{self, Write};

/// Bytes collected before whole lines are written out.
pub const BATCH: usize = 64 * 1024;

/// Buffers writes and passes on only complete lines.
#[derive(Debug)]
pub struct WholeLines<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> WholeLines<W> {
    pub fn new(inner: W) -> Self {
        WholeLines { inner, buf: Vec::with_capacity(BATCH) }
    }

    /// Writes every complete line buffered so far in one `write_all`.
    fn write_lines(&mut self) -> io::Result<()> {
        if let Some(last) = self.buf.iter().rposition(|&b| b == b'\n') {
            self.inner.write_all(&self.buf[..=last])?;
            self.buf.drain(..=last);
        }
        Ok(())
    }
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BATCH {
            self.write_lines()?;
        }
        Ok(data.len())
    }

    /// Writes the complete lines; a line still being written stays buffered.
    fn flush(&mut self) -> io::Result<()> {
        self.write_lines()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for WholeLines<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each write call the inner writer gets.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);
    impl Write for &mut Calls {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_whole_lines_reach_the_inner_writer() {
        let mut calls = Calls::default();
        {
            let mut w = WholeLines::new(&mut calls);
            let line = vec![b'x'; 999];
            for _ in 0..200 {
                w.write_all(&line).unwrap();
                w.write_all(b"\n").unwrap();
            }
            w.write_all(b"partial").unwrap();
            w.flush().unwrap();
            w.write_all(b" line\n").unwrap();
        }
        assert!(calls.0.len() >= 3, "batched: {} writes", calls.0.len());
        assert!(calls.0.iter().all(|c| c.ends_with(b"\n")), "every write ends a line");
        assert!(calls
            .0
            .iter()
            .all(|c| c.split(|&b| b == b'\n').all(|l| l.is_empty() || l.len() == 999 || l == b"partial line")));
        assert_eq!(calls.0.iter().map(Vec::len).sum::<usize>(), 200 * 1000 + 13);
    }
}
