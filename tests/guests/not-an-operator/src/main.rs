//! Test guest: a WASI command component, not a Weir operator.
fn main() {
    println!("hello");
}
