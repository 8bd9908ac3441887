//! Just enough ELF parsing to tell a static executable from a dynamic one.
//!
//! A dynamically linked executable names its loader in a `PT_INTERP` program
//! header; a static one (including static-pie) has none. Both images must run
//! in an otherwise empty root filesystem, so their binaries have to be static.

use crate::{Error, Result};

const PT_INTERP: u32 = 3;

/// Reports whether `data`, a 64-bit little-endian ELF file, has no `PT_INTERP`
/// program header, i.e. needs no dynamic loader.
pub fn is_static_elf(data: &[u8]) -> Result<bool> {
    if data.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(Error::NotElf("bad magic, class or byte order"));
    }
    let phoff = usize::try_from(read_u64(data, 32)?)
        .map_err(|_| Error::NotElf("program header offset out of range"))?;
    let phentsize = usize::from(read_u16(data, 54)?);
    let phnum = usize::from(read_u16(data, 56)?);
    if phentsize < 4 {
        return Err(Error::NotElf("program header entries too small"));
    }
    for i in 0..phnum {
        let at = phentsize
            .checked_mul(i)
            .and_then(|n| n.checked_add(phoff))
            .ok_or(Error::NotElf("program header offset out of range"))?;
        if read_u32(data, at)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

fn bytes<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N]> {
    at.checked_add(N)
        .and_then(|end| data.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::NotElf("truncated"))
}

fn read_u16(data: &[u8], at: usize) -> Result<u16> {
    bytes(data, at).map(u16::from_le_bytes)
}

fn read_u32(data: &[u8], at: usize) -> Result<u32> {
    bytes(data, at).map(u32::from_le_bytes)
}

fn read_u64(data: &[u8], at: usize) -> Result<u64> {
    bytes(data, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        assert!(is_static_elf(b"#!/bin/sh\n").is_err());
        assert!(is_static_elf(b"\x7fELF\x02\x01").is_err());
    }

    #[test]
    fn detects_interpreter() {
        // A minimal header: one program header right after the 64-byte ELF header.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        assert!(is_static_elf(&elf).unwrap());
        elf[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        assert!(!is_static_elf(&elf).unwrap());
    }

    #[test]
    fn host_shell_is_dynamic() {
        // Debian's /bin/sh (dash) is dynamically linked; skip quietly elsewhere.
        if let Ok(data) = std::fs::read("/bin/dash") {
            assert!(!is_static_elf(&data).unwrap());
        }
    }
}
