use objmgr::{MapAccess, Section};
fn main() {
    let keep = Section::create("Local\\oc", 65536).unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map_or(200000, |s| s.parse().unwrap());
    let t = std::time::Instant::now();
    for _ in 0..n {
        let s = Section::open("Local\\oc", MapAccess::READ).unwrap();
        drop(std::hint::black_box(s.map(MapAccess::READ).unwrap()));
        s.close().unwrap();
    }
    println!("{:?}", t.elapsed() / n as u32);
    drop(keep);
}
