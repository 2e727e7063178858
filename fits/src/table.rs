//! The layout of a BINTABLE extension (FITS 4.0, section 7.3): fixed-width big-endian rows, then an optional heap for
//! variable-length arrays; and the Arrow schema it reads as.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};

use crate::header::{BLOCK, Header, Value};

/// What an HDU is.
#[derive(Debug, Clone, PartialEq)]
pub enum HduKind {
    Primary,
    BinTable,
    /// Any other extension (IMAGE, TABLE, ...), by its XTENSION value.
    Other(String),
}

/// One header-data unit: where its header and data are, and how long the data is.
#[derive(Debug, Clone)]
pub struct Hdu {
    /// 0 for the primary HDU, as astropy numbers them.
    pub index: usize,
    pub kind: HduKind,
    pub header: Header,
    pub data_offset: u64,
    /// Bytes of data, without the padding to a whole block.
    pub data_len: u64,
}

impl Hdu {
    /// Read the structural keywords of a header found at `offset`.
    pub fn new(index: usize, header: Header, data_offset: u64) -> Result<Self, String> {
        let first = header.cards().first().map(|c| c.keyword.as_str()).unwrap_or_default();
        let kind = match (index, first) {
            (0, "SIMPLE") => HduKind::Primary,
            (0, _) => return Err("not a FITS file (it does not start with SIMPLE)".into()),
            (_, "XTENSION") => match header.string("XTENSION").map(str::trim) {
                Some("BINTABLE") => HduKind::BinTable,
                Some(other) => HduKind::Other(other.to_string()),
                None => return Err(format!("HDU {index}: XTENSION is not a string")),
            },
            _ => return Err(format!("HDU {index} does not start with XTENSION (junk after the last HDU?)")),
        };
        let data_len = data_len(&header, kind == HduKind::Primary).map_err(|e| format!("HDU {index}: {e}"))?;
        Ok(Self { index, kind, header, data_offset, data_len })
    }

    pub fn extname(&self) -> Option<&str> {
        self.header.string("EXTNAME")
    }

    /// Where the next HDU's header starts.
    pub fn next_offset(&self) -> Result<u64, String> {
        self.data_len
            .div_ceil(BLOCK as u64)
            .checked_mul(BLOCK as u64)
            .and_then(|padded| padded.checked_add(self.data_offset))
            .ok_or_else(|| format!("HDU {}: data size out of range", self.index))
    }
}

/// |BITPIX| x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn) bits (section 4.4.1; random groups leave out NAXIS1 = 0).
fn data_len(header: &Header, primary: bool) -> Result<u64, String> {
    let bitpix = header.int("BITPIX")?.ok_or("keyword BITPIX is missing")?;
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(format!("BITPIX = {bitpix} is not one of 8, 16, 32, 64, -32, -64"));
    }
    let naxis = header.count("NAXIS")?;
    if naxis > 999 {
        return Err(format!("NAXIS = {naxis} is more than 999"));
    }
    if naxis == 0 {
        return Ok(0);
    }
    let groups = primary && header.value("GROUPS") == Some(&Value::Logical(true));
    let mut elements: u64 = 1;
    for axis in 1..=naxis {
        let n = header.count(&format!("NAXIS{axis}"))?;
        if !(groups && axis == 1) {
            elements = elements.checked_mul(n).ok_or("the data size is out of range")?;
        }
    }
    let (pcount, gcount) = if primary && !groups {
        (0, 1)
    } else {
        (header.int("PCOUNT")?.unwrap_or(0), header.int("GCOUNT")?.unwrap_or(1))
    };
    let (pcount, gcount) = (
        u64::try_from(pcount).map_err(|_| format!("PCOUNT = {pcount} is negative"))?,
        u64::try_from(gcount).map_err(|_| format!("GCOUNT = {gcount} is negative"))?,
    );
    elements
        .checked_add(pcount)
        .and_then(|n| n.checked_mul(gcount))
        .and_then(|n| n.checked_mul(bitpix.unsigned_abs() as u64 / 8))
        .ok_or_else(|| "the data size is out of range".to_string())
}

/// A field's element type (TFORM's type letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// L: 'T', 'F', or 0 for null.
    Logical,
    /// X: bits, most significant first.
    Bit,
    /// B: unsigned byte.
    U8,
    /// I, J, K: big-endian two's complement.
    I16,
    I32,
    I64,
    /// A: ASCII characters.
    Char,
    /// E, D: IEEE floats.
    F32,
    F64,
    /// C, M: pairs of floats (real, imaginary).
    C64,
    C128,
}

impl Kind {
    fn from_letter(letter: char) -> Option<Self> {
        Some(match letter {
            'L' => Kind::Logical,
            'X' => Kind::Bit,
            'B' => Kind::U8,
            'I' => Kind::I16,
            'J' => Kind::I32,
            'K' => Kind::I64,
            'A' => Kind::Char,
            'E' => Kind::F32,
            'D' => Kind::F64,
            'C' => Kind::C64,
            'M' => Kind::C128,
            _ => return None,
        })
    }

    /// Bytes per element (bits count per byte started: handled in [`Column::width`]).
    pub fn size(self) -> usize {
        match self {
            Kind::Logical | Kind::Bit | Kind::U8 | Kind::Char => 1,
            Kind::I16 => 2,
            Kind::I32 | Kind::F32 => 4,
            Kind::I64 | Kind::F64 | Kind::C64 => 8,
            Kind::C128 => 16,
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, Kind::U8 | Kind::I16 | Kind::I32 | Kind::I64)
    }

    fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, Kind::F32 | Kind::F64)
    }
}

/// How stored numbers become physical values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    None,
    /// The unsigned (or, for bytes, signed) integer convention: TZERO = 2^(bits-1) (or -128 for B), TSCAL = 1; read
    /// as the integer type of the other signedness, exactly.
    Offset,
    /// physical = zero + scale x stored, as Float64.
    Linear { scale: f64, zero: f64 },
}

/// A variable-length array field (TFORM `rPt(max)` or `rQt(max)`): a descriptor (count, heap offset) per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarLen {
    /// Q: 64-bit descriptors; P: 32-bit.
    pub long: bool,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub tform: String,
    pub kind: Kind,
    /// Elements per row (characters for A, bits for X; 1 for a variable-length descriptor).
    pub repeat: usize,
    pub var_len: Option<VarLen>,
    /// TDIM axes, fastest first (FITS order), when they describe an array.
    pub dims: Vec<usize>,
    /// Byte offset within the row.
    pub offset: usize,
    pub scaling: Scaling,
    /// TNULL: the stored integer that means null.
    pub null: Option<i64>,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub ucd: Option<String>,
}

impl Column {
    /// Bytes of this field in a row.
    pub fn width(&self) -> usize {
        match (self.var_len, self.kind) {
            (Some(VarLen { long }), _) => self.repeat * if long { 16 } else { 8 },
            (None, Kind::Bit) => self.repeat.div_ceil(8),
            (None, kind) => self.repeat * kind.size(),
        }
    }

    /// The Arrow type of one element, after scaling.
    fn element_type(&self) -> DataType {
        let offset = self.scaling == Scaling::Offset;
        match self.kind {
            _ if matches!(self.scaling, Scaling::Linear { .. }) => DataType::Float64,
            Kind::Logical | Kind::Bit => DataType::Boolean,
            Kind::U8 if offset => DataType::Int8,
            Kind::U8 => DataType::UInt8,
            Kind::I16 if offset => DataType::UInt16,
            Kind::I16 => DataType::Int16,
            Kind::I32 if offset => DataType::UInt32,
            Kind::I32 => DataType::Int32,
            Kind::I64 if offset => DataType::UInt64,
            Kind::I64 => DataType::Int64,
            Kind::Char => DataType::Utf8,
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::C64 => complex(DataType::Float32),
            Kind::C128 => complex(DataType::Float64),
        }
    }

    /// Array shape of a row's value (outermost first), empty for a scalar. Strings take the first TDIM axis as
    /// their length.
    pub fn shape(&self) -> Vec<usize> {
        if self.var_len.is_some() {
            return Vec::new();
        }
        let mut axes = if self.dims.is_empty() { vec![self.repeat] } else { self.dims.clone() };
        if self.kind == Kind::Char {
            axes.remove(0);
        }
        if axes == [1] {
            axes.clear();
        }
        axes.reverse();
        axes
    }

    /// Characters per string (A fields).
    pub fn string_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(self.repeat)
    }

    pub fn data_type(&self) -> DataType {
        let element = self.element_type();
        if self.var_len.is_some() {
            return if self.kind == Kind::Char {
                DataType::Utf8
            } else {
                DataType::List(Arc::new(Field::new_list_field(element, true)))
            };
        }
        self.shape().iter().rev().fold(element, |inner, &n| {
            DataType::FixedSizeList(Arc::new(Field::new_list_field(inner, true)), n as i32)
        })
    }

    pub fn field(&self) -> Field {
        let mut metadata = HashMap::new();
        for (key, value) in [("unit", &self.unit), ("description", &self.description), ("ucd", &self.ucd)] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                metadata.insert(key.to_string(), v.clone());
            }
        }
        Field::new(&self.name, self.data_type(), true).with_metadata(metadata)
    }
}

fn complex(part: DataType) -> DataType {
    DataType::Struct(Fields::from(vec![Field::new("re", part.clone(), true), Field::new("im", part, true)]))
}

/// A BINTABLE HDU's rows and fields.
#[derive(Debug, Clone)]
pub struct Table {
    pub hdu: Hdu,
    /// NAXIS1: bytes per row.
    pub row_len: usize,
    /// NAXIS2.
    pub rows: u64,
    /// Offset of the heap from the start of the data (THEAP), and its size.
    pub heap_offset: u64,
    pub heap_len: u64,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn new(hdu: Hdu) -> Result<Self, String> {
        if hdu.kind != HduKind::BinTable {
            return Err(format!("HDU {} is not a binary table ({:?})", hdu.index, hdu.kind));
        }
        let h = &hdu.header;
        let row_len = h.count("NAXIS1")?;
        let rows = h.count("NAXIS2")?;
        let fields = h.count("TFIELDS")?;
        if h.count("NAXIS")? != 2 || h.int("BITPIX")? != Some(8) || fields > 999 {
            return Err("a BINTABLE needs BITPIX = 8, NAXIS = 2 and TFIELDS <= 999".into());
        }
        let table_len = row_len.checked_mul(rows).ok_or("NAXIS1 x NAXIS2 is out of range")?;
        let heap_len = h.count("PCOUNT").unwrap_or(0);
        let heap_offset = match h.int("THEAP")? {
            Some(theap) => u64::try_from(theap).ok().filter(|&t| t >= table_len && t <= table_len.saturating_add(heap_len)),
            None => Some(table_len),
        }
        .ok_or("THEAP points outside the data")?;
        let row_len = usize::try_from(row_len).map_err(|_| "NAXIS1 is out of range")?;

        let mut columns = Vec::with_capacity(fields as usize);
        let mut offset = 0usize;
        let mut names = HashSet::new();
        for number in 1..=fields as usize {
            let column = column(h, number, offset).map_err(|e| format!("column {number}: {e}"))?;
            offset = offset.checked_add(column.width()).ok_or("row length out of range")?;
            let mut column = column;
            // Field names must be unique in Arrow; a repeated TTYPE gets its column number.
            if !names.insert(column.name.clone()) {
                column.name = format!("{}_{number}", column.name);
                names.insert(column.name.clone());
            }
            columns.push(column);
        }
        if offset != row_len {
            return Err(format!("the TFORMs add up to {offset} bytes per row, but NAXIS1 = {row_len}"));
        }
        Ok(Self { heap_offset, heap_len, row_len, rows, columns, hdu })
    }

    /// Bytes of the rows and the heap.
    pub fn data_len(&self) -> u64 {
        self.hdu.data_len
    }

    /// Bytes from the start of the heap (THEAP) to the end of the data.
    pub fn heap_size(&self) -> u64 {
        (self.row_len as u64 * self.rows + self.heap_len).saturating_sub(self.heap_offset)
    }

    pub fn schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|c| Arc::new(c.field())).collect::<Vec<FieldRef>>())
    }
}

/// TFORMn = `rTa`: repeat, type letter, extra characters (ignored; `rPt(max)` / `rQt(max)` for variable length).
fn parse_tform(tform: &str) -> Result<(usize, Kind, Option<VarLen>), String> {
    let t = tform.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    // Arrow's fixed-size lists hold at most 2^31 - 1 elements (and so every width below fits a usize).
    let repeat = match digits {
        0 => Some(1),
        _ => t[..digits].parse::<i32>().ok().and_then(|r| usize::try_from(r).ok()),
    };
    let repeat = repeat.ok_or_else(|| format!("TFORM '{tform}': a repeat count above 2147483647 is not supported"))?;
    let mut rest = t[digits..].chars();
    let letter = rest.next().ok_or_else(|| format!("TFORM '{tform}' has no type"))?;
    let invalid = || format!("TFORM '{tform}' is not a binary-table format");
    match letter {
        'P' | 'Q' => {
            let element = rest.next().and_then(Kind::from_letter).ok_or_else(invalid)?;
            if repeat > 1 {
                return Err(invalid());
            }
            Ok((repeat, element, Some(VarLen { long: letter == 'Q' })))
        }
        _ => Ok((repeat, Kind::from_letter(letter).ok_or_else(invalid)?, None)),
    }
}

/// TDIMn = `(d1,d2,...)`.
fn parse_tdim(tdim: &str) -> Result<Vec<usize>, String> {
    let inner = tdim.trim().strip_prefix('(').and_then(|t| t.strip_suffix(')')).ok_or_else(|| format!("invalid TDIM '{tdim}'"))?;
    inner.split(',').map(|d| d.trim().parse::<usize>().map_err(|_| format!("invalid TDIM '{tdim}'"))).collect()
}

fn column(h: &Header, number: usize, offset: usize) -> Result<Column, String> {
    let key = |k: &str| format!("{k}{number}");
    let tform = h.string(&key("TFORM")).ok_or("TFORM is missing")?.to_string();
    let (repeat, kind, var_len) = parse_tform(&tform)?;
    let name = h.string(&key("TTYPE")).map(str::trim).filter(|n| !n.is_empty()).map(String::from);
    let name = name.unwrap_or_else(|| format!("col{number}"));
    let text = |k: &str| h.string(&key(k)).map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    let description = text("TCOMM").or_else(|| {
        h.card(&key("TTYPE")).map(|c| c.comment.trim().to_string()).filter(|c| !c.is_empty())
    });
    let mut dims = match h.string(&key("TDIM")) {
        Some(tdim) if var_len.is_none() => parse_tdim(tdim)?,
        _ => Vec::new(),
    };
    if !dims.is_empty() {
        let product = dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).ok_or("TDIM out of range")?;
        if product > repeat {
            return Err(format!("TDIM has {product} elements but TFORM '{tform}' only {repeat}"));
        }
        if product < repeat {
            // The standard allows fewer; keep the whole field readable as a flat array rather than drop elements.
            dims.clear();
        }
    }

    let scale = h.number(&key("TSCAL"))?.unwrap_or(1.0);
    let zero = h.number(&key("TZERO"))?.unwrap_or(0.0);
    let scaling = if (scale, zero) == (1.0, 0.0) || matches!(kind, Kind::Char | Kind::Logical | Kind::Bit) {
        // The standard forbids scaling of A, L and X fields; readers ignore it.
        Scaling::None
    } else if !kind.is_numeric() {
        return Err(format!("TSCAL/TZERO on complex field '{name}' is not supported"));
    } else {
        let offset: Option<i128> = match kind {
            Kind::U8 => Some(-128),
            Kind::I16 => Some(1 << 15),
            Kind::I32 => Some(1 << 31),
            Kind::I64 => Some(1 << 63),
            _ => None,
        };
        // Exactly the offset: 2^63 - 1 written as an integer would round to 2^63 as a double.
        let exact = match (h.value(&key("TZERO")), offset) {
            (Some(Value::Int(i)), Some(o)) => *i == o,
            (Some(Value::Float(f)), Some(o)) => *f == o as f64,
            _ => false,
        };
        if scale == 1.0 && exact {
            Scaling::Offset
        } else {
            Scaling::Linear { scale, zero }
        }
    };
    let null = match h.int(&key("TNULL")) {
        Ok(Some(v)) if kind.is_integer() => Some(i64::try_from(v).map_err(|_| format!("TNULL = {v} is out of range"))?),
        _ => None,
    };
    Ok(Column {
        name,
        tform,
        kind,
        repeat,
        var_len,
        dims,
        offset,
        scaling,
        null,
        unit: text("TUNIT"),
        description,
        ucd: text("TUCD"),
    })
}
