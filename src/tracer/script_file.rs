//! The script bpftrace runs, as a private temporary file named after the
//! script, so bpftrace's messages point at `import-tree.bt:78`, not `stdin`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A script written to a private directory, removed on drop.
#[derive(Debug)]
pub struct ScriptFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ScriptFile {
    /// Writes `source` as `<name>.bt` (the name's last path component).
    pub fn write(name: &str, source: &str) -> std::io::Result<ScriptFile> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "importprobe-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        }
        let base = Path::new(name).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let base: String =
            base.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        let file =
            if base.ends_with(".bt") { base } else { format!("{}.bt", if base.is_empty() { "script" } else { &base }) };
        let path = dir.join(file);
        let made = ScriptFile { dir, path };
        std::fs::write(&made.path, source)?;
        Ok(made)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_after_the_script_and_removed_on_drop() {
        let f = ScriptFile::write("import-tree", "BEGIN { exit(); }\n").unwrap();
        assert!(f.path().ends_with("import-tree.bt"));
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "BEGIN { exit(); }\n");
        let dir = f.path().parent().unwrap().to_path_buf();
        drop(f);
        assert!(!dir.exists());
        let g = ScriptFile::write("/home/me/my script.bt", "").unwrap();
        assert!(g.path().ends_with("my_script.bt"));
    }
}
