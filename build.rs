//! Compiles `src/dist/gloo.cc`, the C interface to Gloo (the collective communication
//! library PyTorch uses on CPUs) that data-parallel training goes through, and links
//! `libgloo` (Debian/Ubuntu: `libgloo-dev`, which `scripts/install-deps.sh` installs).

fn main() {
    println!("cargo:rerun-if-changed=src/dist/gloo.cc");
    println!("cargo:rerun-if-env-changed=GLOO_DIR");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("src/dist/gloo.cc")
        .flag_if_supported("-std=c++17")
        .warnings(false);
    match std::env::var_os("GLOO_DIR") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            build.include(dir.join("include"));
            println!(
                "cargo:rustc-link-search=native={}",
                dir.join("lib").display()
            );
        }
        None => {
            if !std::path::Path::new("/usr/include/gloo/allreduce.h").exists() {
                panic!(
                    "Gloo's headers are missing (/usr/include/gloo): install libgloo-dev \
                     (`bash scripts/install-deps.sh` does), or set GLOO_DIR to a Gloo \
                     installation (with include/ and lib/)"
                );
            }
        }
    }
    build.compile("vidapter_gloo");
    println!("cargo:rustc-link-lib=dylib=gloo");
}
