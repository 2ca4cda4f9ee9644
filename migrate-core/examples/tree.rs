fn main() {
    for sql in std::env::args().skip(1) {
        let p = squawk_syntax::SourceFile::parse(&sql);
        let text = format!("{:#?}", p.syntax_node());
        for line in text.lines().filter(|l| !l.contains("WHITESPACE")) {
            println!("{line}");
        }
    }
}
