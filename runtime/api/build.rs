//! Embeds the dashboard's files (`dashboard/`: HTML, ES modules, CSS, SVG;
//! no build step, no dependencies) into the crate, so that a node serves
//! them from its binary, offline. Generates `$OUT_DIR/dashboard_assets.rs`:
//! a table of (file name, content type, bytes).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("/// The dashboard's files: (name, content type, bytes).\npub(crate) const ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let mime = match ext.as_str() {
            "html" => "text/html; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            _ => continue,
        };
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(out, "    ({name:?}, {mime:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("dashboard_assets.rs"), out).unwrap();
}
