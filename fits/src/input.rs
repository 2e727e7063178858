//! Bytes of a FITS file in any object store: ranged reads of a plain file (only what is asked for), or one pass over
//! a compressed file's decompressed stream (gzip is recognised by its magic bytes whatever the file's name).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::header::{BLOCK, Header, header_len};
use crate::table::{Hdu, HduKind, Table};
use crate::{HduSelector, fits_error};

/// Header bytes fetched per request from a plain file: most headers fit, a long one takes a few requests.
const HEADER_READ: u64 = 64 << 10;
/// A header longer than this is corrupt rather than large (999 fields x 10 keywords is 800 KB).
const MAX_HEADER: usize = 64 << 20;

enum Access {
    Ranged { store: Arc<dyn ObjectStore>, path: Path, size: u64, ahead: (u64, Bytes) },
    Stream { stream: BoxStream<'static, Result<Bytes>>, buffer: BytesMut, position: u64 },
}

/// One FITS file being read, and its name for messages.
pub struct Input {
    access: Access,
    pub name: String,
}

impl Input {
    /// Open `object`, decompressing it if `compression` says so or it starts with gzip's magic bytes.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        object: &ObjectMeta,
        compression: FileCompressionType,
        name: String,
    ) -> Result<Self> {
        let path = object.location.clone();
        let size = object.size;
        let ahead = if size == 0 { Bytes::new() } else { store.get_range(&path, 0..size.min(HEADER_READ)).await? };
        let compression = match compression.is_compressed() {
            true => compression,
            false if ahead.starts_with(&[0x1f, 0x8b]) => FileCompressionType::GZIP,
            false => return Ok(Self { access: Access::Ranged { store, path, size, ahead: (0, ahead) }, name }),
        };
        let raw = store.get(&path).await?.into_stream().map_err(DataFusionError::from).boxed();
        let stream = compression.convert_stream(raw)?;
        Ok(Self { access: Access::Stream { stream, buffer: BytesMut::new(), position: 0 }, name })
    }

    pub fn is_ranged(&self) -> bool {
        matches!(self.access, Access::Ranged { .. })
    }

    /// The size of a plain file (unknown for a stream until its end).
    pub fn size(&self) -> Option<u64> {
        match self.access {
            Access::Ranged { size, .. } => Some(size),
            Access::Stream { .. } => None,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> DataFusionError {
        fits_error(&self.name, message.to_string())
    }

    /// `len` bytes at `offset`. A stream only goes forward: the bytes before `offset` are skipped.
    pub async fn read(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let name = self.name.clone();
        match &mut self.access {
            Access::Ranged { store, path, size, ahead } => {
                let end = offset.checked_add(len as u64).filter(|&end| end <= *size);
                let end = end.ok_or_else(|| fits_error(&name, format!("truncated: needs bytes up to {} but the file has {size}", offset.saturating_add(len as u64))))?;
                let (start, bytes) = &*ahead;
                if offset >= *start && end <= start + bytes.len() as u64 {
                    return Ok(bytes.slice((offset - start) as usize..(end - start) as usize));
                }
                Ok(store.get_range(path, offset..end).await?)
            }
            Access::Stream { stream, buffer, position } => {
                if offset < *position {
                    return Err(fits_error(&name, "internal: a compressed file is read forward only"));
                }
                loop {
                    // Bytes before `offset` are dropped as they arrive: memory stays at one chunk plus `len`.
                    let drop = ((offset - *position).min(buffer.len() as u64)) as usize;
                    let _ = buffer.split_to(drop);
                    *position += drop as u64;
                    if *position == offset && buffer.len() >= len {
                        *position += len as u64;
                        return Ok(buffer.split_to(len).freeze());
                    }
                    if !next_chunk(stream, buffer, &name).await? {
                        return Err(fits_error(&name, format!(
                            "truncated: the decompressed file ends at byte {}, before byte {} that the header promises",
                            *position + buffer.len() as u64,
                            offset + len as u64,
                        )));
                    }
                }
            }
        }
    }

    /// Several ranges of a plain file at once (object_store merges close ones and fetches the rest in parallel).
    pub async fn read_ranges(&mut self, ranges: &[std::ops::Range<u64>]) -> Result<Vec<Bytes>> {
        match &self.access {
            Access::Ranged { store, path, size, .. } => match ranges.iter().find(|r| r.end > *size) {
                Some(r) => Err(self.error(format!("truncated: needs bytes up to {} but the file has {size}", r.end))),
                None => Ok(store.get_ranges(path, ranges).await?),
            },
            Access::Stream { .. } => Err(self.error("internal: ranged reads of a compressed file")),
        }
    }

    /// A plain file must hold all the data its header declares (a stream is checked as it is read).
    pub fn check_complete(&self, table: &Table) -> Result<()> {
        // A lying NAXIS2 can put the end beyond u64: such a file is as truncated as any.
        let end = table.hdu.data_offset.saturating_add(table.data_len());
        match self.size() {
            Some(size) if size < end => Err(self.error(format!(
                "truncated: the header declares {} rows of {} bytes{} ending at byte {end}, but the file has {size} bytes",
                table.rows,
                table.row_len,
                if table.heap_len > 0 { format!(" and a {}-byte heap", table.heap_len) } else { String::new() },
            ))),
            _ => Ok(()),
        }
    }

    /// Whether any byte lies at or after `offset` (a clean end of file between HDUs).
    async fn has_bytes_at(&mut self, offset: u64) -> Result<bool> {
        match &mut self.access {
            Access::Ranged { size, .. } => Ok(offset < *size),
            Access::Stream { stream, buffer, position } => loop {
                let drop = ((offset.saturating_sub(*position)).min(buffer.len() as u64)) as usize;
                let _ = buffer.split_to(drop);
                *position += drop as u64;
                if *position >= offset && !buffer.is_empty() {
                    return Ok(true);
                }
                if !next_chunk(stream, buffer, &self.name).await? {
                    return Ok(false);
                }
            },
        }
    }

    /// The header that starts at `offset`, with its length in bytes (whole blocks).
    async fn header(&mut self, offset: u64) -> Result<(Header, u64)> {
        let mut bytes = BytesMut::new();
        loop {
            if let Some(len) = header_len(&bytes) {
                let header = Header::parse(&bytes[..len]).map_err(|e| self.error(format!("header at byte {offset}: {e}")))?;
                return Ok((header, len as u64));
            }
            if bytes.len() >= MAX_HEADER {
                return Err(self.error(format!("the header at byte {offset} has no END card in {MAX_HEADER} bytes")));
            }
            let at = offset + bytes.len() as u64;
            // Plain files: what the last read-ahead holds from here, else a new read-ahead (one request for most
            // headers, the next HDU's included); streams: a block at a time.
            let want = match &self.access {
                Access::Ranged { size, ahead: (start, bytes), .. } => {
                    let cached = (start + bytes.len() as u64).saturating_sub(at) as usize / BLOCK * BLOCK;
                    match at >= *start && cached > 0 {
                        true => cached,
                        false => (size.saturating_sub(at).min(HEADER_READ) as usize / BLOCK).max(1) * BLOCK,
                    }
                }
                Access::Stream { .. } => BLOCK,
            };
            let chunk = self.read(at, want).await.map_err(|e| match self.size() {
                Some(size) if at == 0 && size < BLOCK as u64 => {
                    self.error(format!("not a FITS file ({size} bytes, less than a 2880-byte block)"))
                }
                Some(size) if at + BLOCK as u64 > size => self.error(format!("truncated: the header at byte {offset} has no END card")),
                _ => e,
            })?;
            // Refuse other files at their first bytes rather than after searching them for an END card. A read-ahead
            // chunk goes on past the END card into binary data: only the blocks up to it must be text.
            let starts_hdu = chunk.starts_with(b"SIMPLE  =") || chunk.starts_with(b"XTENSION=");
            let end = chunk.chunks(BLOCK).position(|block| header_len(block).is_some()).map_or(chunk.len(), |i| (i + 1) * BLOCK);
            if (bytes.is_empty() && !starts_hdu) || !chunk[..end.min(chunk.len())].iter().all(|b| (b' '..=b'~').contains(b)) {
                let what = if offset == 0 { "not a FITS file".to_string() } else { format!("no FITS header at byte {offset}") };
                return Err(self.error(what));
            }
            bytes.extend_from_slice(&chunk);
            if let Access::Ranged { ahead, .. } = &mut self.access {
                *ahead = (at, chunk);
            }
        }
    }

    /// Find the table `selector` names, reading (or, for streams, decompressing) the headers before it.
    pub async fn locate(&mut self, selector: &HduSelector) -> Result<Table> {
        let (mut offset, mut index) = (0u64, 0usize);
        // The default: the first binary table with rows (DR19's astraAllStarASPCAP has an empty BOSS table in HDU 1
        // before the APOGEE one), else the first binary table.
        let mut first_empty: Option<Hdu> = None;
        loop {
            if index > 0 && !self.has_bytes_at(offset).await? {
                if let Some(hdu) = first_empty {
                    return Table::new(hdu).map_err(|e| self.error(e));
                }
                return Err(self.error(match selector {
                    HduSelector::FirstTable => format!("no binary table (BINTABLE) in its {index} HDUs"),
                    HduSelector::Index(i) => format!("no HDU {i}: the file has {index} (0 is the primary)"),
                    HduSelector::Name(n) => format!("no HDU named '{n}' (EXTNAME) in its {index} HDUs"),
                }));
            }
            let (header, len) = self.header(offset).await?;
            let hdu = Hdu::new(index, header, offset + len).map_err(|e| self.error(e))?;
            let chosen = match selector {
                HduSelector::FirstTable if hdu.kind == HduKind::BinTable => {
                    let empty = hdu.header.count("NAXIS2").unwrap_or(0) == 0;
                    if empty && first_empty.is_none() {
                        first_empty = Some(hdu.clone());
                    }
                    !empty
                }
                HduSelector::FirstTable => false,
                HduSelector::Index(i) => *i == index,
                HduSelector::Name(n) => hdu.extname().is_some_and(|e| e.trim().eq_ignore_ascii_case(n.trim())),
            };
            if chosen {
                return Table::new(hdu).map_err(|e| self.error(e));
            }
            offset = hdu.next_offset().map_err(|e| self.error(e))?;
            index += 1;
        }
    }

    /// Read a stream to its end, so that a compressed file cut short or corrupt after the table is an error too.
    pub async fn drain(&mut self) -> Result<()> {
        if let Access::Stream { stream, buffer, position } = &mut self.access {
            loop {
                *position += buffer.len() as u64;
                buffer.clear();
                if !next_chunk(stream, buffer, &self.name).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Append the next chunk of the stream to `buffer`; false at its end.
async fn next_chunk(stream: &mut BoxStream<'static, Result<Bytes>>, buffer: &mut BytesMut, name: &str) -> Result<bool> {
    match stream.next().await {
        Some(Ok(chunk)) => {
            buffer.extend_from_slice(&chunk);
            Ok(true)
        }
        Some(Err(e)) => Err(fits_error(name, format!("cannot decompress: {}", one_line(&e)))),
        None => Ok(false),
    }
}

/// An error with its sources in one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}
