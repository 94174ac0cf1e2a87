//! Picture parameter sets (ITU-T H.264 §7.3.2.2): parsed completely, checked against the
//! allow-list and written anew by the gateway (docs/protocol.md §3.3).
//!
//! Refused: slice groups (FMO), redundant pictures, scaling matrices; every numeric field is
//! range-checked; nothing may follow the last field.

use thiserror::Error;

use super::bits::{unescape, BitReader, BitWriter, OutOfBits};

/// Everything the gateway keeps of a PPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpsInfo {
    /// `pic_parameter_set_id`, 0–255.
    pub pps_id: u32,
    /// `seq_parameter_set_id`, 0–31.
    pub sps_id: u32,
    /// `entropy_coding_mode_flag` (CABAC).
    pub cabac: bool,
    /// `bottom_field_pic_order_in_frame_present_flag`.
    pub bottom_field_pic_order: bool,
    /// `num_ref_idx_l0_default_active_minus1` + 1 and the same for list 1, 1–32.
    pub num_ref_idx_default: (u32, u32),
    /// `weighted_pred_flag`.
    pub weighted_pred: bool,
    /// `weighted_bipred_idc`, 0–2.
    pub weighted_bipred_idc: u32,
    /// `pic_init_qp_minus26` (−26…25).
    pub pic_init_qp_minus26: i32,
    /// `pic_init_qs_minus26` (−26…25).
    pub pic_init_qs_minus26: i32,
    /// `chroma_qp_index_offset` (−12…12).
    pub chroma_qp_index_offset: i32,
    /// `deblocking_filter_control_present_flag`.
    pub deblocking_control: bool,
    /// `constrained_intra_pred_flag`.
    pub constrained_intra_pred: bool,
    /// The High-profile tail, when present: `transform_8x8_mode_flag` and
    /// `second_chroma_qp_index_offset`.
    pub high: Option<(bool, i32)>,
}

/// Why a PPS was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PpsError {
    /// Truncated or malformed.
    #[error("PPS is truncated or malformed")]
    Malformed,
    /// A field out of range.
    #[error("PPS field `{0}` is out of range")]
    OutOfRange(&'static str),
    /// A feature outside the allow-list.
    #[error("PPS uses {0}, which is not allowed")]
    Feature(&'static str),
    /// Bytes follow the last field.
    #[error("PPS has data after its last field")]
    TrailingData,
}

impl From<OutOfBits> for PpsError {
    fn from(_: OutOfBits) -> Self {
        PpsError::Malformed
    }
}

fn bounded(v: u32, max: u32, field: &'static str) -> Result<u32, PpsError> {
    if v > max {
        Err(PpsError::OutOfRange(field))
    } else {
        Ok(v)
    }
}

fn signed(v: i64, min: i64, max: i64, field: &'static str) -> Result<i32, PpsError> {
    if (min..=max).contains(&v) {
        Ok(v as i32)
    } else {
        Err(PpsError::OutOfRange(field))
    }
}

/// Parse and check a PPS NAL unit (including its NAL header byte).
pub fn parse_pps(nal: &[u8]) -> Result<PpsInfo, PpsError> {
    let rbsp = unescape(nal.get(1..).ok_or(PpsError::Malformed)?);
    let mut r = BitReader::new(&rbsp);
    let pps_id = bounded(r.ue()?, 255, "pic_parameter_set_id")?;
    let sps_id = bounded(r.ue()?, 31, "seq_parameter_set_id")?;
    let cabac = r.flag()?;
    let bottom_field_pic_order = r.flag()?;
    if r.ue()? != 0 {
        return Err(PpsError::Feature("slice groups (FMO)"));
    }
    let l0 = bounded(r.ue()?, 31, "num_ref_idx_l0_default_active_minus1")? + 1;
    let l1 = bounded(r.ue()?, 31, "num_ref_idx_l1_default_active_minus1")? + 1;
    let weighted_pred = r.flag()?;
    let weighted_bipred_idc = bounded(r.bits(2)?, 2, "weighted_bipred_idc")?;
    let pic_init_qp_minus26 = signed(r.se()?, -26, 25, "pic_init_qp_minus26")?;
    let pic_init_qs_minus26 = signed(r.se()?, -26, 25, "pic_init_qs_minus26")?;
    let chroma_qp_index_offset = signed(r.se()?, -12, 12, "chroma_qp_index_offset")?;
    let deblocking_control = r.flag()?;
    let constrained_intra_pred = r.flag()?;
    if r.flag()? {
        return Err(PpsError::Feature("redundant pictures"));
    }
    let high = if r.more_rbsp_data() {
        let transform_8x8 = r.flag()?;
        if r.flag()? {
            return Err(PpsError::Feature("scaling matrices"));
        }
        let second = signed(r.se()?, -12, 12, "second_chroma_qp_index_offset")?;
        Some((transform_8x8, second))
    } else {
        None
    };
    if !r.at_trailing_bits() {
        return Err(PpsError::TrailingData);
    }
    Ok(PpsInfo {
        pps_id,
        sps_id,
        cabac,
        bottom_field_pic_order,
        num_ref_idx_default: (l0, l1),
        weighted_pred,
        weighted_bipred_idc,
        pic_init_qp_minus26,
        pic_init_qs_minus26,
        chroma_qp_index_offset,
        deblocking_control,
        constrained_intra_pred,
        high,
    })
}

impl PpsInfo {
    /// The PPS NAL unit the gateway forwards, written from the parsed values (`nal_ref_idc` 3).
    pub fn write(&self) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.ue(self.pps_id);
        w.ue(self.sps_id);
        w.bit(self.cabac);
        w.bit(self.bottom_field_pic_order);
        w.ue(0); // num_slice_groups_minus1
        w.ue(self.num_ref_idx_default.0 - 1);
        w.ue(self.num_ref_idx_default.1 - 1);
        w.bit(self.weighted_pred);
        w.bits(self.weighted_bipred_idc, 2);
        w.se(i64::from(self.pic_init_qp_minus26));
        w.se(i64::from(self.pic_init_qs_minus26));
        w.se(i64::from(self.chroma_qp_index_offset));
        w.bit(self.deblocking_control);
        w.bit(self.constrained_intra_pred);
        w.bit(false); // redundant_pic_cnt_present_flag
        if let Some((transform_8x8, second)) = self.high {
            w.bit(transform_8x8);
            w.bit(false); // pic_scaling_matrix_present_flag
            w.se(i64::from(second));
        }
        w.into_nal(0x68)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PpsInfo {
        PpsInfo {
            pps_id: 0,
            sps_id: 0,
            cabac: false,
            bottom_field_pic_order: false,
            num_ref_idx_default: (1, 1),
            weighted_pred: false,
            weighted_bipred_idc: 0,
            pic_init_qp_minus26: -3,
            pic_init_qs_minus26: 0,
            chroma_qp_index_offset: 2,
            deblocking_control: true,
            constrained_intra_pred: false,
            high: None,
        }
    }

    #[test]
    fn a_written_pps_parses_back_to_the_same_values() {
        for p in [
            sample(),
            PpsInfo {
                pps_id: 255,
                sps_id: 31,
                high: Some((true, -5)),
                num_ref_idx_default: (32, 4),
                ..sample()
            },
        ] {
            let nal = p.write();
            assert_eq!(parse_pps(&nal).as_ref(), Ok(&p));
            assert_eq!(parse_pps(&nal).map(|q| q.write()), Ok(nal));
        }
    }

    #[test]
    fn slice_groups_and_trailing_data_are_refused() {
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(0);
        w.bit(false);
        w.bit(false);
        w.ue(1); // two slice groups
        assert_eq!(
            parse_pps(&w.into_nal(0x68)),
            Err(PpsError::Feature("slice groups (FMO)"))
        );
        let mut nal = sample().write();
        nal.push(0x42);
        assert!(parse_pps(&nal).is_err());
    }
}
