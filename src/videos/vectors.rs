//! The segment vectors in memory, for search by meaning: one contiguous `f32` array scanned
//! exactly per query. At 384 dimensions that is 1.5 KB per segment; 100,000 segments (about
//! 400 hours of video) take 150 MB and a scan well under the 20 ms goal on 2 cores (see the
//! README's numbers). An approximate index (HNSW) pays past a few million segments, where the
//! scan's time and the memory of f32 vectors both grow linearly.
//!
//! The store holds the vectors; this is rebuilt from it at start and kept in step as videos
//! become ready or are deleted.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, RwLock};

use super::embed::{cosine, DIMENSIONS};

/// Which segment a vector is.
#[derive(Debug, Clone)]
pub struct Key {
    pub video: Arc<str>,
    pub tenant: Arc<str>,
    pub idx: u32,
}

#[derive(Default)]
struct Inner {
    keys: Vec<Key>,
    data: Vec<f32>,
}

#[derive(Default)]
pub struct VectorIndex {
    inner: RwLock<Inner>,
}

/// A hit: the segment and its cosine to the query.
#[derive(Debug, Clone)]
pub struct Hit {
    pub key: Key,
    pub score: f32,
}

/// A candidate in the top-k heap, ordered so the heap's top is the worst kept.
struct Worst(f32, usize);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl VectorIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A video's vectors, replacing any it had. Vectors of the wrong length are skipped.
    pub fn add(&self, video: &str, tenant: &str, vectors: &[(u32, Vec<f32>)]) {
        self.remove(video);
        let (video, tenant): (Arc<str>, Arc<str>) = (video.into(), tenant.into());
        let mut inner = self.write();
        for (idx, v) in vectors.iter().filter(|(_, v)| v.len() == DIMENSIONS) {
            inner.keys.push(Key {
                video: video.clone(),
                tenant: tenant.clone(),
                idx: *idx,
            });
            inner.data.extend_from_slice(v);
        }
    }

    pub fn remove(&self, video: &str) {
        let mut inner = self.write();
        if !inner.keys.iter().any(|k| &*k.video == video) {
            return;
        }
        let Inner { keys, data } = std::mem::take(&mut *inner);
        for (key, v) in keys.into_iter().zip(data.chunks_exact(DIMENSIONS)) {
            if &*key.video != video {
                inner.keys.push(key);
                inner.data.extend_from_slice(v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// The videos that have vectors here.
    pub fn videos(&self) -> HashSet<Arc<str>> {
        self.read().keys.iter().map(|k| k.video.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` segments of `tenant` (only `videos`, when given) closest to `query`, best first.
    pub fn search(
        &self,
        query: &[f32],
        tenant: &str,
        videos: Option<&HashSet<String>>,
        k: usize,
    ) -> Vec<Hit> {
        let inner = self.read();
        // Sized by what there is, never by `k` alone: `k` may come from a caller.
        let mut heap: BinaryHeap<Worst> =
            BinaryHeap::with_capacity(k.min(inner.keys.len()).saturating_add(1));
        for (i, (key, v)) in inner
            .keys
            .iter()
            .zip(inner.data.chunks_exact(DIMENSIONS))
            .enumerate()
        {
            if &*key.tenant != tenant || videos.is_some_and(|only| !only.contains(&*key.video)) {
                continue;
            }
            let score = cosine(query, v);
            if heap.len() < k {
                heap.push(Worst(score, i));
            } else if heap.peek().is_some_and(|w| score > w.0) {
                heap.pop();
                heap.push(Worst(score, i));
            }
        }
        let mut hits: Vec<Hit> = heap
            .into_iter()
            .map(|Worst(score, i)| Hit {
                key: inner.keys[i].clone(),
                score,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; DIMENSIONS];
        v[i] = 1.0;
        v
    }

    #[test]
    fn finds_the_nearest_of_its_tenant_and_forgets_deleted_videos() {
        let index = VectorIndex::default();
        index.add("a", "", &[(0, unit(0)), (1, unit(1))]);
        index.add("b", "", &[(0, unit(2))]);
        index.add("c", "acme", &[(0, unit(1))]);
        let hits = index.search(&unit(1), "", None, 2);
        assert_eq!((&*hits[0].key.video, hits[0].key.idx), ("a", 1));
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        assert_eq!(hits.len(), 2);
        let acme = index.search(&unit(1), "acme", None, 5);
        assert_eq!(acme.len(), 1);
        assert_eq!(&*acme[0].key.video, "c");
        index.remove("a");
        assert_eq!(index.len(), 2);
        let only_b: HashSet<String> = ["b".to_string()].into();
        let hits = index.search(&unit(1), "", Some(&only_b), 5);
        assert_eq!(hits.len(), 1);
        assert_eq!(&*hits[0].key.video, "b");
    }
}
