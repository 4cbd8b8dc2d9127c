fn main() {
    let src = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let mut p = tree_sitter::Parser::new();
    p.set_language(&tree_sitter_c::LANGUAGE.into()).unwrap();
    println!("{}", p.parse(&src, None).unwrap().root_node().to_sexp());
}
