//! `/node_modules/` serves only regular files really inside `[web] node_modules_dir`: no symlink
//! out of it, no dotfile or dot-directory, no `..` (plain or percent-encoded).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::symlink;
use std::path::Path;

use switchboard_tests::{TestGateway, http_get, temp_dir};

/// `root/` served; `outside/` next to it holds what must never be served.
fn tree(base: &Path) -> std::path::PathBuf {
    let root = base.join("root");
    let outside = base.join("outside");
    for dir in [root.join("pkg/dist"), root.join(".bin"), outside.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(root.join("pkg/dist/sdk.js"), "export const ok = 1;\n").unwrap();
    std::fs::write(root.join(".env"), "SECRET=dotfile\n").unwrap();
    std::fs::write(root.join("pkg/.npmrc"), "//registry/:_authToken=dotfile\n").unwrap();
    std::fs::write(root.join(".bin/tool"), "dot-directory\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "outside the served directory\n").unwrap();
    symlink(outside.join("secret.txt"), root.join("pkg/escape.js")).unwrap();
    symlink(&outside, root.join("outdir")).unwrap();
    symlink(root.join(".env"), root.join("pkg/env.js")).unwrap();
    symlink(root.join("pkg/dist/sdk.js"), root.join("pkg/alias.js")).unwrap();
    root
}

fn config(root: &Path) -> String {
    format!(
        "{}\n[web]\nnode_modules_dir = {:?}\n",
        switchboard_tests::TEST_CONFIG,
        root.display().to_string()
    )
}

#[tokio::test]
async fn only_regular_files_inside_the_directory_are_served() {
    let base = temp_dir("static");
    let root = tree(&base);
    let gw = TestGateway::with_config(&config(&root)).await;
    for path in [
        "/node_modules/pkg/dist/sdk.js",
        "/node_modules/pkg/alias.js",
    ] {
        let (status, body) = http_get(gw.main, path).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "export const ok = 1;\n"),
            "{path}"
        );
    }
    for path in [
        "/node_modules/.env",
        "/node_modules/%2eenv",
        "/node_modules/pkg/.npmrc",
        "/node_modules/.bin/tool",
        "/node_modules/pkg/env.js",
        "/node_modules/pkg/escape.js",
        "/node_modules/outdir/secret.txt",
        "/node_modules/../outside/secret.txt",
        "/node_modules/pkg/../../outside/secret.txt",
        "/node_modules/%2e%2e/outside/secret.txt",
        "/node_modules/pkg%2f..%2f..%2foutside%2fsecret.txt",
        "/node_modules/pkg/dist",
        "/node_modules/pkg/missing.js",
    ] {
        let (status, body) = http_get(gw.main, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("dotfile") && !body.contains("outside the served"),
            "{path} leaked: {body}"
        );
    }
    gw.stop().await;
    std::fs::remove_dir_all(base).unwrap();
}

/// Running `npm ci` while the gateway runs is enough: the directory is looked up per request.
#[tokio::test]
async fn a_directory_created_after_start_is_served() {
    let base = temp_dir("static-late");
    let root = base.join("root");
    let gw = TestGateway::with_config(&config(&root)).await;
    assert_eq!(
        http_get(gw.main, "/node_modules/pkg/dist/sdk.js").await.0,
        404
    );
    tree(&base);
    let (status, body) = http_get(gw.main, "/node_modules/pkg/dist/sdk.js").await;
    assert_eq!((status, body.as_str()), (200, "export const ok = 1;\n"));
    gw.stop().await;
    std::fs::remove_dir_all(base).unwrap();
}
