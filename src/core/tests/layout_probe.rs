//! Pins the archived layouts drawn in `docs/format.md`: if rkyv or a struct changes them, this
//! fails, and the format version must move (with a fixture for the old one).

use std::mem::{align_of, offset_of, size_of};

use crate::core::format::{
    ArchivedBucketConfig, ArchivedChecksum, ArchivedDefaultRetention, ArchivedManifest,
    ArchivedManifestBody, ArchivedObjectMeta, ArchivedPart, ArchivedRetention, ArchivedShardHeader,
    ArchivedVersionState,
};
use crate::core::hlc::ArchivedVersion;
use crate::core::keys::ArchivedWrappedKey;
use crate::core::layout::ArchivedShardLocation;

#[test]
fn archived_layouts_match_format_md() {
    macro_rules! pin {
        ($t:ty, $size:expr, $align:expr; $($f:ident @ $o:expr),*) => {{
            assert_eq!((size_of::<$t>(), align_of::<$t>()), ($size, $align), stringify!($t));
            $( assert_eq!(offset_of!($t, $f), $o, concat!(stringify!($t), ".", stringify!($f))); )*
        }};
    }
    pin!(ArchivedManifest, 352, 8;
        bucket @ 0, key @ 8, object @ 16, version @ 48, created_ms @ 64, body @ 72, order @ 256,
        state @ 272);
    pin!(ArchivedVersionState, 80, 8;
        written_under @ 0, removed @ 1, retention @ 8, legal_hold @ 32, revised @ 40, bucket @ 56);
    pin!(ArchivedRetention, 16, 8; mode @ 0, until_ms @ 8);
    pin!(ArchivedBucketConfig, 20, 4; versioning @ 0, object_lock @ 1, default_retention @ 4);
    pin!(ArchivedDefaultRetention, 12, 4; mode @ 0, period @ 4, years @ 8);
    pin!(ArchivedManifestBody, 184, 8;);
    pin!(ArchivedObjectMeta, 176, 8;
        size @ 0, content_type @ 8, user_metadata @ 20, headers @ 28, etag @ 36, checksums @ 44,
        dek @ 52, k @ 124, m @ 125, block_size @ 128, layout_epoch @ 136, placement @ 144,
        block_hashes @ 152, inline @ 160, parts @ 164);
    pin!(ArchivedWrappedKey, 72, 4; key_id @ 0, kcv @ 4, nonce @ 12, ciphertext @ 24);
    pin!(ArchivedShardHeader, 96, 8;
        object @ 0, version @ 32, shard_index @ 48, k @ 49, m @ 50, block_size @ 52, size @ 56,
        layout_epoch @ 64, placement @ 72, crcs @ 80, block_hashes @ 88);
    pin!(ArchivedShardLocation, 12, 4; site @ 0, node @ 4, disk @ 8);
    pin!(ArchivedVersion, 16, 8; physical_ms @ 0, logical @ 8, gateway @ 12);
    pin!(ArchivedChecksum, 12, 4; algorithm @ 0, value @ 4);
    pin!(ArchivedPart, 16, 8; size @ 0, etag @ 8);
}
