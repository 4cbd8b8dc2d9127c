fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let r = ftreview_static::scan_paths(&paths, &Default::default()).unwrap();
    for f in &r.findings {
        println!(
            "{}:{}:{}: {} [{:?}/{:?}] {} :: fn={:?} sym={:?} prot={:?} rel={} ep={:?}",
            f.file.display(),
            f.span.line,
            f.span.column,
            f.code,
            f.severity,
            f.confidence,
            f.message,
            f.function,
            f.symbol.as_ref().map(|s| format!(
                "{:?}:{}:{}",
                s.kind,
                s.container.clone().unwrap_or_default(),
                s.name
            )),
            f.protected_by,
            f.related.len(),
            f.entry_points
        );
    }
    println!(
        "quality {:.3} files {} gil {:?}",
        r.parse_quality(),
        r.files.len(),
        r.gil.state
    );
    for m in &r.gil.modules {
        println!("  {:?}", m);
    }
    println!("methods {}", r.methods.len());
    if std::env::var("METHODS").is_ok() {
        for m in &r.methods {
            println!("  {:?}", m);
        }
    }
    for f in &r.files {
        if f.functions_with_errors > 0 {
            println!(
                "  {}/{} {}",
                f.functions_with_errors,
                f.functions,
                f.path.display()
            );
        }
    }
}
