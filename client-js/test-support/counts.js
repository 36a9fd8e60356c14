// Object counts by kind that the converters should make from CVAT and Label Studio files,
// counted from the raw JSON without the converters. Used by the unit tests and the
// integration tests.

const CVAT_KIND = {
  rectangle: 'bbox', polygon: 'polygon', polyline: 'polyline', points: 'points', ellipse: 'ellipse',
  cuboid: 'cuboid', mask: 'mask', skeleton: 'skeleton',
};

const LABEL_STUDIO_KIND = {
  rectangle: 'bbox', rectanglelabels: 'bbox', ellipse: 'ellipse', keypoint: 'points', polygon: 'polygon', brush: 'mask',
};

function counter() {
  const counts = {};
  const add = (kind, n = 1) => {
    counts[kind] = (counts[kind] ?? 0) + n;
  };
  return { counts, add };
}

/** Counts a dump's tracks into add, its frames into frame and its labels into labels. */
function countCvatTracks(dump, add, frame, labels) {
  for (const track of dump.tracks) {
    labels.add(Number(track.label_id));
    if ((track.elements ?? []).length === 0) {
      for (const shape of track.shapes) {
        add(CVAT_KIND[shape.type]);
        frame(shape.frame);
      }
      continue;
    }
    // A skeleton track: one object per frame with a keyframe of the skeleton or an element.
    const trackFrames = new Set(track.shapes.map((s) => Number(s.frame)));
    for (const element of track.elements) {
      labels.add(Number(element.label_id));
      for (const s of element.shapes) trackFrames.add(Number(s.frame));
    }
    add('skeleton', trackFrames.size);
    trackFrames.forEach(frame);
  }
}

/**
 * Counts a CVAT file of dumps by section and id: one object per shape, tag and track
 * keyframe, one item per frame of a dump and one category per label id.
 * @returns {Record<string, number>} counts by annolive kind.
 */
export function cvatCounts(data) {
  const { counts, add } = counter();
  const frames = new Set();
  const labels = new Set();
  for (const [section, dumps] of Object.entries(data)) {
    for (const [id, dump] of Object.entries(dumps)) {
      const frame = (f) => frames.add(`${section}/${id}/${Number(f)}`);
      for (const shape of dump.shapes) {
        add(CVAT_KIND[shape.type]);
        frame(shape.frame);
        labels.add(Number(shape.label_id));
        for (const element of shape.elements ?? []) labels.add(Number(element.label_id));
      }
      for (const tag of dump.tags) {
        add('tag');
        frame(tag.frame);
        labels.add(Number(tag.label_id));
      }
      countCvatTracks(dump, add, frame, labels);
    }
  }
  add('item', frames.size);
  add('category', labels.size);
  return counts;
}

/**
 * Counts a Label Studio task. Results with the same id are one region, counted by the type
 * of its shape result, because a `labels` result only adds a label. Each task has one item,
 * and each label name one category.
 * @returns {Record<string, number>} counts by annolive kind.
 */
export function labelStudioCounts(task) {
  const { counts, add } = counter();
  add('item');
  const labels = new Set();
  for (const entry of [...(task.annotations ?? []), ...(task.predictions ?? [])]) {
    const regionTypes = new Map();
    for (const result of entry.result) {
      if (result.type === 'relation') {
        add('relation');
        continue;
      }
      for (const key of Object.keys(result.value)) {
        if (key.endsWith('labels')) result.value[key].forEach((name) => labels.add(name));
      }
      if (result.type !== 'labels') regionTypes.set(result.id, result.type);
    }
    for (const type of regionTypes.values()) add(LABEL_STUDIO_KIND[type]);
  }
  add('category', labels.size);
  return counts;
}

/** Counts objects (ops or snapshot objects) by kind. */
export function kindCounts(objects) {
  const { counts, add } = counter();
  for (const object of objects) add(object.kind);
  return counts;
}
