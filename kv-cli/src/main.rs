//! The `kv` binary (work in progress: the shell is not built yet).

fn main() {
    eprintln!("kv: the shell is not implemented yet; see README.md");
    std::process::exit(3);
}
