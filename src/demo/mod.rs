//! `ordergate demo`: the whole path end to end, measured.

pub mod floor;
