// `sqlx::migrate!` embeds the migrations when the crate compiles, and a new migration file
// alone does not make cargo recompile it: a build would silently lack the migration.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
