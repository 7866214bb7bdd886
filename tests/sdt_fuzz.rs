//! Fuzzing the SDT note parser: whatever the bytes, `parse_probes` returns
//! probes or an error, never panics.

mod common;

use common::*;
use importprobe::elf::sdt::parse_probes;
use proptest::prelude::*;
use std::sync::{Mutex, OnceLock};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// A minimal little-endian ELF64 file whose only sections are
/// `.note.stapsdt` holding `notes` and the section name table.
fn synthetic_elf(notes: &[u8]) -> Vec<u8> {
    let shstrtab = b"\0.note.stapsdt\0.shstrtab\0";
    let notes_at = 64;
    let strtab_at = notes_at + notes.len();
    let shdrs_at = (strtab_at + shstrtab.len() + 7) & !7;
    let mut f = vec![0u8; shdrs_at];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[40..48].copy_from_slice(&(shdrs_at as u64).to_le_bytes()); // e_shoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    f[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
    f[notes_at..strtab_at].copy_from_slice(notes);
    f[strtab_at..strtab_at + shstrtab.len()].copy_from_slice(shstrtab);
    let shdr = |name: u32, kind: u32, offset: usize, size: usize, align: u64| {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        h[48..56].copy_from_slice(&align.to_le_bytes());
        h
    };
    f.extend(vec![0u8; 64]);
    f.extend(shdr(1, 7, notes_at, notes.len(), 4)); // SHT_NOTE
    f.extend(shdr(15, 3, strtab_at, shstrtab.len(), 1)); // SHT_STRTAB
    f
}

/// One `stapsdt` note with the given descriptor.
fn stapsdt_note(desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&8u32.to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&3u32.to_le_bytes());
    n.extend_from_slice(b"stapsdt\0");
    n.extend_from_slice(desc);
    n.resize((n.len() + 3) & !3, 0);
    n
}

fn real_binary() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| std::fs::read(bin()).unwrap())
}

#[test]
fn synthetic_elf_is_parsed() {
    let mut desc = Vec::new();
    for v in [0x1000u64, 0x2000, 0x3000] {
        desc.extend_from_slice(&v.to_le_bytes());
    }
    desc.extend_from_slice(b"python\0import__find__load__done\08@%rax -4@%edx\0");
    let probes = parse_probes(&synthetic_elf(&stapsdt_note(&desc))).unwrap();
    assert_eq!(probes.len(), 1);
    assert_eq!(
        (probes[0].name.as_str(), probes[0].semaphore, probes[0].args.len()),
        ("import__find__load__done", Some(0x3000), 2)
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_probes(&data);
    }

    #[test]
    fn random_bytes_behind_an_elf_magic(tail in proptest::collection::vec(any::<u8>(), 0..2048), class in 1u8..=2) {
        let mut data = vec![0x7f, b'E', b'L', b'F', class, 1, 1];
        data.extend(tail);
        let _ = parse_probes(&data);
    }

    #[test]
    fn random_note_section(notes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_probes(&synthetic_elf(&notes));
    }

    #[test]
    fn random_stapsdt_descriptor(
        desc in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(b'@'), Just(b'-'), Just(b' '), Just(b'8'), Just(b'%'), any::<u8>()],
            0..96,
        ),
        count in 1usize..4,
    ) {
        let notes: Vec<u8> = std::iter::repeat_n(stapsdt_note(&desc), count).flatten().collect();
        if let Ok(probes) = parse_probes(&synthetic_elf(&notes)) {
            prop_assert_eq!(probes.len(), count);
        }
    }

    #[test]
    fn real_binary_with_byte_flips_in_notes_and_headers(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..8),
    ) {
        // One shared copy, flipped and restored, not 256 copies of a big binary.
        static COPY: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
        let mut data = COPY.get_or_init(|| Mutex::new(real_binary().to_vec())).lock().unwrap_or_else(|e| e.into_inner());
        let notes = stapsdt_range(real_binary());
        let shoff = u64::from_le_bytes(real_binary()[40..48].try_into().unwrap()) as usize;
        // Where a flip lands: the note section, the ELF header, the
        // section headers, or anywhere.
        let regions = [notes, 0..64, shoff..data.len(), 0..data.len()];
        let mut touched = Vec::new();
        for (at, region, value) in flips {
            let r = &regions[region as usize];
            let i = r.start + at.index(r.len());
            touched.push(i);
            data[i] = value;
        }
        let _ = parse_probes(&data);
        for i in touched {
            data[i] = real_binary()[i];
        }
    }

    #[test]
    fn well_formed_descriptors_round_trip(
        provider in "[a-z_][a-z0-9_]{0,15}",
        name in "[a-z_][a-z0-9_]{0,40}",
        args in proptest::collection::vec(("-?", prop::sample::select(vec![1u8, 2, 4, 8]), "%r[a-z0-9]{1,2}|-?[0-9]{1,3}\\(%r[a-z]{2}\\)"), 0..6),
        pc in any::<u64>(),
        sem in any::<u64>(),
    ) {
        let spec: Vec<String> = args.iter().map(|(sign, size, loc)| format!("{sign}{size}@{loc}")).collect();
        let spec = spec.join(" ");
        let mut desc = Vec::new();
        for v in [pc, 0, sem] {
            desc.extend_from_slice(&v.to_le_bytes());
        }
        for s in [&provider, &name, &spec] {
            desc.extend_from_slice(s.as_bytes());
            desc.push(0);
        }
        let probes = parse_probes(&synthetic_elf(&stapsdt_note(&desc))).unwrap();
        prop_assert_eq!(probes.len(), 1);
        let p = &probes[0];
        prop_assert_eq!((&p.provider, &p.name, &p.args_raw, p.pc, p.address), (&provider, &name, &spec, pc, pc));
        prop_assert_eq!(p.semaphore, (sem != 0).then_some(sem));
        prop_assert_eq!(p.args.len(), args.len());
        for (got, (sign, size, loc)) in p.args.iter().zip(&args) {
            prop_assert_eq!((got.size, got.signed, &got.location), (Some(*size), !sign.is_empty(), loc));
        }
    }

    #[test]
    fn real_binary_truncated(at in any::<prop::sample::Index>(), near_notes in any::<bool>()) {
        let data = real_binary();
        let len = if near_notes {
            let notes = stapsdt_range(data);
            notes.start + at.index(notes.len() + 1)
        } else {
            at.index(data.len())
        };
        let _ = parse_probes(&data[..len]);
    }
}

#[test]
fn cpython_with_byte_flips_in_notes() {
    let Some(path) = python_file(PYTHON) else { return };
    let original = std::fs::read(path).unwrap();
    let notes = stapsdt_range(&original);
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&proptest::collection::vec((notes.clone(), any::<u8>()), 1..16), |flips| {
            let mut data = original.clone();
            for (at, value) in flips {
                data[at] = value;
            }
            let _ = parse_probes(&data);
            Ok(())
        })
        .unwrap();
}
