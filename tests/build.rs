//! `--cfg real_llm` when `ORCHESTRA_REAL_LLM=1`: the tests that call real models run then; without
//! it they are reported as ignored (not as passed).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(real_llm)");
    println!("cargo::rerun-if-env-changed=ORCHESTRA_REAL_LLM");
    if std::env::var_os("ORCHESTRA_REAL_LLM").is_some_and(|v| v == "1") {
        println!("cargo::rustc-cfg=real_llm");
    }
}
