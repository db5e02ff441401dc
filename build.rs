fn main() {
    // Every template under templates/ is compiled into the binary, so an
    // installed phasegate needs no files beside it.
    minijinja_embed::embed_templates!("templates", &[".sql"]);
}
