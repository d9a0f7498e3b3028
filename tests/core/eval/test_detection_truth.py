"""Detection ground truth matched to the model's classes by name: the COCO SSD (90 COCO ids,
0-based) against coco-val-dev64's YOLO labels (80 classes, named in its data.yaml), and
YOLOX-Nano against a COCO JSON whose category ids are not its class indices, both really
evaluated; then the matching's edges on small ground-truth dicts."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from app.backends.factory import make_runner
from app.core.eval.detection_truth import align_classes, dataset_class_names
from app.core.eval.evaluate import evaluate
from app.core.model.inspection import inspect_model
from app.core.model.workspace import Workspace
from tests.assets import COCO_DEV64, MODELS, YOLOX, needs_assets
from tests.workspaces import copy_labelled_dev64


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """16 coco-val-dev64 photos with their YOLO labels and the set's data.yaml."""
    root = copy_labelled_dev64(tmp_path_factory.mktemp("dev16"), 16)
    shutil.copy(COCO_DEV64 / "data.yaml", root / "data.yaml")
    return root


@needs_assets
def test_the_set_names_its_classes():
    names, source = dataset_class_names(COCO_DEV64 / "labels")
    assert source.endswith("data.yaml") and len(names) == 80
    assert names[:3] == ["person", "bicycle", "car"] and names[79] == "toothbrush"


@needs_assets
def test_a_90_id_ssd_is_scored_on_80_class_labels(photos, tmp_path):
    ws = Workspace.for_model(inspect_model(MODELS / "ssd-mobilenet-v2-coco"), tmp_path / "ws")
    report = evaluate(ws, photos / "images", variants=["fp32"], runner_factory=make_runner)
    classes = report["label_classes"]
    assert classes["by"] == "name" and classes["matched"] == classes["of"] > 10
    assert classes["dropped_boxes"] == 0 and "labels_note" not in report
    # compared by number every class from 'stop sign' on was another (3.6 mAP50-95 on dev64)
    assert report["variants"][0]["metrics"]["mAP50_95"] > 20.0


@needs_assets
def test_yolox_scores_the_same_on_a_coco_json_with_other_ids(photos, tmp_path):
    names, _ = dataset_class_names(photos / "labels")
    ids = {i: 7 + 3 * i for i in range(len(names))}  # sparse ids, as COCO's 1..90 are
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": ids[i], "name": n} for i, n in enumerate(names)]
    for k, photo in enumerate(sorted((photos / "images").glob("*.jpg")), start=1):
        h, w = cv2.imread(str(photo)).shape[:2]
        coco["images"].append({"id": 1000 + k, "file_name": photo.name, "height": h, "width": w})
        label = photos / "labels" / f"{photo.stem}.txt"
        for line in label.read_text().splitlines() if label.is_file() else []:
            c, cx, cy, bw, bh = line.split()[:5]
            box = [(float(cx) - float(bw) / 2) * w, (float(cy) - float(bh) / 2) * h]
            box += [float(bw) * w, float(bh) * h]
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": 1000 + k,
                    "category_id": ids[int(c)],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    ws = Workspace.for_model(inspect_model(YOLOX), tmp_path / "ws")
    common = {"variants": ["fp32"], "runner_factory": make_runner}
    by_json = evaluate(ws, photos / "images", coco_json=path, **common)
    by_txt = evaluate(ws, photos / "images", **common)
    assert by_json["label_classes"]["by"] == by_txt["label_classes"]["by"] == "name"
    m_json, m_txt = (r["variants"][0]["metrics"]["mAP50_95"] for r in (by_json, by_txt))
    assert m_txt > 25.0 and m_json == pytest.approx(m_txt, abs=0.05)


def gt_of(categories, classes):
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
        "categories": categories,
        "annotations": [
            {"id": k, "image_id": 1, "category_id": c, "bbox": [0, 0, 5, 5], "area": 25}
            for k, c in enumerate(classes, start=1)
        ],
    }


def test_classes_move_to_the_model_index_of_their_name():
    gt = gt_of([{"id": 1, "name": "person"}, {"id": 3, "name": "Traffic Light"}], [1, 3, 3])
    out, info = align_classes(gt, ["car", "traffic_light", "person"])
    assert [a["category_id"] for a in out["annotations"]] == [2, 1, 1]
    assert info == {
        "by": "name",
        "matched": 2,
        "of": 2,
        "dropped_boxes": 0,
        "unmatched": [],
        "note": "",
    }


def test_boxes_of_classes_the_model_lacks_are_dropped_and_said():
    gt = gt_of([{"id": 1, "name": "person"}, {"id": 2, "name": "zebra"}], [1, 2, 2])
    out, info = align_classes(gt, ["person", "car"])
    assert [a["category_id"] for a in out["annotations"]] == [0]
    assert (
        info["note"]
        == "2 labelled boxes of 1 classes the model does not have (zebra) are not scored"
    )


def test_unnamed_or_unmatched_classes_are_compared_by_number():
    numbered = gt_of([{"id": 0, "name": "0"}, {"id": 1, "name": "1"}], [0, 1])
    out, info = align_classes(numbered, ["person", "car"])
    assert out is numbered and info == {"by": "number", "note": ""}
    foreign = gt_of([{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}], [0, 1])
    _, info = align_classes(foreign, ["person", "car"])
    assert info["by"] == "number" and "none of the labels' class names (cat, dog" in info["note"]


def test_a_bad_data_yaml_is_ignored(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [unclosed")
    assert dataset_class_names(tmp_path / "labels") == (None, "")
    (tmp_path / "data.yaml").write_text("names:\n  0: cat\n  2: dog\n")
    assert dataset_class_names(tmp_path / "labels")[0] == [
        "cat",
        "1",
        "dog",
    ]  # a gap keeps its number


def test_images_without_a_label_file_are_said_and_labels_of_another_folder_refused(tmp_path):
    """Half a YOLO labels folder scores the other half as background, silently before (mAP
    37.7 -> 24.0 in a new user's try); now the note says how many and what to do. Labels that
    fit none of the images are refused naming the folder."""
    from app.core.errors import UserError
    from app.core.eval.detection_truth import detection_truth

    names = [str(i) for i in range(80)]
    photos = sorted((COCO_DEV64 / "images").glob("*.jpg"))[:6]
    sizes = [(p, 480, 640) for p in photos]
    half = tmp_path / "half"
    half.mkdir()
    for p in photos[:3]:
        shutil.copy(COCO_DEV64 / "labels" / f"{p.stem}.txt", half)
    gt, source, classes = detection_truth(names, sizes, tmp_path, half, None)
    assert gt["annotations"] and source == str(half)
    assert classes["note"].startswith(f"3 of 6 images have no label file in {half}")
    other = tmp_path / "other"
    other.mkdir()
    (other / "not_these.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UserError, match=f"{other}: no label file there is named like these 6"):
        detection_truth(names, sizes, tmp_path, other, None)
