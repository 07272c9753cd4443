//! `flash-rehearse`: rehearse a flash sale against a running deployment (see the crate docs).

fn main() {
    std::process::exit(flash_rehearse::main_with_args(std::env::args_os()));
}
