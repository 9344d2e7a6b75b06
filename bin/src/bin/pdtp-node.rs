//! `pdtp-node`: tracker, seed, get and demo (being built; see issue 4).

fn main() {
    eprintln!("pdtp-node: not implemented yet");
    std::process::exit(2);
}
