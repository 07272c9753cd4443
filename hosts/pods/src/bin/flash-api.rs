//! The `flash-api` pod binary; see [`flash_pods`].

fn main() {
    flash_pods::serve::main_for(flash_pods::serve::Role::Api);
}
