//! `flash-bench-hello [PORT]`: an axum hello-world route on 127.0.0.1, with the same runtime
//! shape as `flash up` (multi-threaded tokio), as the same-run reference of the HTTP rows.

use axum::Router;
use axum::routing::get;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let served = rt.block_on(async move {
        let app = Router::new().route("/", get(|| async { "Hello, World!" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("hello-world on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await
    });
    if let Err(e) = served {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
