//! Writes the network input `cft extract` builds from an image (decoded as Pillow does, resized
//! to S×S with the chosen Pillow's pass order) as raw HWC uint8 bytes, for comparison with
//! `numpy.asarray(Image.open(p).convert("RGB").resize((S, S), Image.BILINEAR))`.
//!
//! `cargo run --release -p cft-features --example network_input -- IMAGE SIZE pillow13|pillow12 OUT.raw`

use cft_features::image::{decode, resize_bilinear_as};
use cft_features::Resize;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, size, pillow, out] = args.as_slice() else {
        return Err("usage: network_input IMAGE SIZE pillow13|pillow12 OUT.raw".into());
    };
    let size: usize = size.parse()?;
    let pillow: Resize = pillow.parse().map_err(|e| format!("the resize order: {e}"))?;
    let img = resize_bilinear_as(&decode(std::path::Path::new(image))?, size, size, pillow);
    std::fs::write(out, &img.data)?;
    Ok(())
}
