//! With feature `cuda`: builds cuda-emu (the CPU emulation of the CUDA
//! kernels in `src/cuda/kernels`) and generates the tables the Rust side
//! reads: every kernel source with the names of its `extern "C" __global__`
//! kernels, and one emulated launcher per kernel.

fn main() {
    #[cfg(feature = "cuda")]
    cuda::build();
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};

    const KERNEL_DECL: &str = "extern \"C\" __global__ void ";

    /// A kernel source file and the kernels it defines, in file order.
    struct Source {
        path: PathBuf,
        kernels: Vec<String>,
    }

    fn read_sources(dir: &Path) -> Vec<Source> {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("kernel directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cu"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                let kernels = text
                    .match_indices(KERNEL_DECL)
                    .map(|(at, _)| {
                        let rest = &text[at + KERNEL_DECL.len()..];
                        rest[..rest.find('(').expect("kernel name followed by '('")].to_string()
                    })
                    .collect();
                Source { path, kernels }
            })
            .collect()
    }

    pub fn build() {
        let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
        let kernels_dir = root.join("src/cuda/kernels");
        let emu_dir = root.join("src/cuda/emu");
        println!("cargo:rerun-if-changed={}", kernels_dir.display());
        println!("cargo:rerun-if-changed={}", emu_dir.display());
        let sources = read_sources(&kernels_dir);

        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++17")
            .opt_level(2)
            // Products and sums round as written, on every host.
            .flag("-ffp-contract=off")
            .flag_if_supported("-Wno-unused-parameter")
            .include(&emu_dir)
            .include(&kernels_dir)
            .file(emu_dir.join("runtime.cpp"));
        let (mut table, mut externs, mut launchers) = (String::new(), String::new(), String::new());
        for source in &sources {
            let stem = source
                .path
                .file_stem()
                .expect("a .cu file")
                .to_string_lossy();
            let unit = out.join(format!("emu_{stem}.cpp"));
            let mut text = format!(
                "#include \"cuda_emu.h\"\n#include \"{}\"\n",
                source.path.display()
            );
            for k in &source.kernels {
                writeln!(text, "CPT_EMU_EXPORT({k})").unwrap();
                writeln!(
                    externs,
                    "    fn cpt_emu_{k}(launch: *const EmuLaunch, params: *mut *mut c_void) -> c_int;"
                )
                .unwrap();
                writeln!(launchers, "    ({k:?}, cpt_emu_{k}),").unwrap();
            }
            fs::write(&unit, text).expect("writing an emulation unit");
            build.file(&unit);
            writeln!(
                table,
                "    KernelSource {{ file: {:?}, text: include_str!({:?}), kernels: &{:?} }},",
                source.path.file_name().expect("a file").to_string_lossy(),
                source.path.display().to_string(),
                source.kernels,
            )
            .unwrap();
        }
        build.compile("cptrain_cuda_emu");

        let common = kernels_dir.join("common.cuh").display().to_string();
        let sources_rs = format!(
            "/// The shared header every source includes.\npub const COMMON_HEADER: &str = include_str!({common:?});\n\
             /// Every kernel source, by file name.\npub const SOURCES: &[KernelSource] = &[\n{table}];\n"
        );
        fs::write(out.join("cuda_sources.rs"), sources_rs).expect("writing cuda_sources.rs");
        let launchers_rs = format!(
            "unsafe extern \"C\" {{\n{externs}}}\n\
             /// The emulated launcher of every kernel, by kernel name.\n\
             const LAUNCHERS: &[(&str, Launcher)] = &[\n{launchers}];\n"
        );
        fs::write(out.join("cuda_emu_launchers.rs"), launchers_rs).expect("writing launchers");
    }
}
