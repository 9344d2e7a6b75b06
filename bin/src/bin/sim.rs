//! `sim`: the PDTP simulator's command line (being built; see issue 3).

fn main() {
    eprintln!("sim: not implemented yet");
    std::process::exit(2);
}
