fn main() {
    println!("cptrain: under construction");
}
