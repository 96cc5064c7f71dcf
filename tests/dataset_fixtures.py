"""Tiny fixture trees in each benchmark's real layout (for tests/test_datasets.py).

Every writer ``make_<stem>(root)`` writes into ``root`` and returns the expectations for a
build with all shots and all classes: ``name`` (registry), ``classnames`` (full list, index =
label), ``counts`` (train, val, test) and, where relevant, ``groups``. Images are one tiny
JPEG's bytes; lists, JSON and ``.mat`` files use the real formats.
"""
import io
import json
import os

import numpy as np

_JPEG = None


def jpeg_bytes():
    global _JPEG
    if _JPEG is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="JPEG")
        _JPEG = buf.getvalue()
    return _JPEG


def img(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(jpeg_bytes())


def text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{ln}\n" for ln in lines))


def jdump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def class_folders(image_dir, folders, n):
    for c in folders:
        for i in range(n):
            img(os.path.join(image_dir, c, f"{c}_{i:04d}.jpg"))


def expect(name, classnames, counts, **kw):
    return dict(name=name, classnames=list(classnames), counts=tuple(counts), **kw)


# ------------------------------------------------------------------ folder-split datasets (50/20/30)
def make_caltech101(root):
    d = os.path.join(root, "caltech-101", "101_ObjectCategories")
    class_folders(d, ["BACKGROUND_Google", "Faces_easy"], 3)
    class_folders(d, ["Faces", "Leopards", "accordion", "airplanes", "anchor"], 10)
    return expect("Caltech101", ["face", "leopard", "accordion", "airplane", "anchor"], (25, 10, 15))


DTD_CLASSES = ["banded", "blotchy", "braided", "bubbly", "bumpy"]


def make_dtd(root):
    class_folders(os.path.join(root, "dtd", "images"), DTD_CLASSES, 10)
    return expect("DescribableTextures", DTD_CLASSES, (25, 10, 15))


FOOD_CLASSES = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare"]


def make_food101(root):
    class_folders(os.path.join(root, "food-101", "images"), FOOD_CLASSES, 10)
    return expect("Food101", FOOD_CLASSES, (25, 10, 15))


EUROSAT = [("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"),
           ("HerbaceousVegetation", "Herbaceous Vegetation Land"), ("Highway", "Highway or Road"),
           ("Industrial", "Industrial Buildings"), ("Pasture", "Pasture Land"),
           ("PermanentCrop", "Permanent Crop Land"), ("Residential", "Residential Buildings"),
           ("River", "River"), ("SeaLake", "Sea or Lake")]


def make_eurosat(root):
    class_folders(os.path.join(root, "eurosat", "2750"), [f for f, _ in EUROSAT], 10)
    return expect("EuroSAT", [n for _, n in EUROSAT], (50, 20, 30))


# ------------------------------------------------------------------ datasets built from official lists
PETS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle"]


def make_oxford_pets(root):
    d = os.path.join(root, "oxford_pets")
    trainval, test = [], []
    for c, breed in enumerate(PETS):
        for i in range(14):
            name = f"{breed}_{i + 1}"
            img(os.path.join(d, "images", name + ".jpg"))
            (trainval if i < 10 else test).append(f"{name} {c + 1} {1 if breed[0].isupper() else 2} {i + 1}")
    text(os.path.join(d, "annotations", "trainval.txt"), trainval)
    text(os.path.join(d, "annotations", "test.txt"), test)
    return expect("OxfordPets", [b.lower() for b in PETS], (40, 10, 20))


CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
        "Acura TSX Sedan 2012"]


def _cars_annos(fnames, classes):
    arr = np.zeros((1, len(fnames)), dtype=[("fname", "O"), ("class", "O")])
    for i, (f, c) in enumerate(zip(fnames, classes)):
        arr[0, i]["fname"] = np.array([f])
        arr[0, i]["class"] = np.array([[c]], dtype=np.uint8)
    return arr


def make_stanford_cars(root):
    from scipy.io import savemat

    d = os.path.join(root, "stanford_cars")
    for split, per, folder in (("train", 8, "cars_train"), ("test", 3, "cars_test")):
        fnames, classes = [], []
        for c in range(len(CARS)):
            for i in range(per):
                f = f"{len(fnames) + 1:05d}.jpg"
                img(os.path.join(d, folder, f))
                fnames.append(f)
                classes.append(c + 1)
        path = (os.path.join(d, "devkit", "cars_train_annos.mat") if split == "train"
                else os.path.join(d, "cars_test_annos_withlabels.mat"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        savemat(path, {"annotations": _cars_annos(fnames, classes)})
    meta = np.zeros((1, len(CARS)), dtype="O")
    for i, n in enumerate(CARS):
        meta[0, i] = np.array([n])
    savemat(os.path.join(d, "devkit", "cars_meta.mat"), {"class_names": meta})
    names = [" ".join([n.split(" ")[-1]] + n.split(" ")[:-1]) for n in CARS]
    return expect("StanfordCars", names, (30, 10, 15))


FLOWERS = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold"]


def make_oxford_flowers(root):
    from scipy.io import savemat

    d = os.path.join(root, "oxford_flowers")
    labels = [(i % 5) + 1 for i in range(50)]
    for i in range(50):
        img(os.path.join(d, "jpg", f"image_{i + 1:05d}.jpg"))
    savemat(os.path.join(d, "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    jdump(os.path.join(d, "cat_to_name.json"), {str(i + 1): n for i, n in enumerate(FLOWERS)})
    return expect("OxfordFlowers", FLOWERS, (25, 10, 15))


AIRCRAFT = ["707-320", "727-200", "737-200", "A300B4", "F/A-18"]


def make_fgvc_aircraft(root):
    d = os.path.join(root, "fgvc_aircraft")
    text(os.path.join(d, "variants.txt"), AIRCRAFT)
    k = 1000000
    for split, per in (("train", 4), ("val", 2), ("test", 3)):
        lines = []
        for v in AIRCRAFT:
            for _ in range(per):
                k += 1
                img(os.path.join(d, "images", f"{k}.jpg"))
                lines.append(f"{k} {v}")
        text(os.path.join(d, f"images_variant_{split}.txt"), lines)
    return expect("FGVCAircraft", AIRCRAFT, (20, 10, 15))


SUN = [("/a/abbey", "abbey"), ("/a/apartment_building/outdoor", "outdoor apartment_building"),
       ("/b/bus_interior", "bus_interior"), ("/b/beach", "beach"), ("/c/castle", "castle")]


def make_sun397(root):
    d = os.path.join(root, "sun397")
    text(os.path.join(d, "ClassName.txt"), [f for f, _ in SUN])
    train, test = [], []
    for c, (folder, _) in enumerate(SUN):
        for i in range(8):
            rel = f"{folder}/sun_{c:02d}{i:03d}.jpg"
            img(os.path.join(d, "SUN397", rel.lstrip("/")))
            (train if i < 5 else test).append(rel)
    text(os.path.join(d, "Training_01.txt"), train)
    text(os.path.join(d, "Testing_01.txt"), test)
    return expect("SUN397", [n for _, n in SUN], (20, 5, 15))


UCF = [("ApplyEyeMakeup", "Apply_Eye_Makeup"), ("ApplyLipstick", "Apply_Lipstick"), ("Archery", "Archery"),
       ("BabyCrawling", "Baby_Crawling"), ("BalanceBeam", "Balance_Beam")]


def make_ucf101(root):
    d = os.path.join(root, "ucf101")
    text(os.path.join(d, "ucfTrainTestlist", "classInd.txt"), [f"{i + 1} {a}" for i, (a, _) in enumerate(UCF)])
    train, test = [], []
    for c, (action, folder) in enumerate(UCF):
        for i in range(8):
            video = f"v_{action}_g{i + 1:02d}_c01"
            img(os.path.join(d, "UCF-101-midframes", folder, video + ".jpg"))
            if i < 5:
                train.append(f"{action}/{video}.avi {c + 1}")
            else:
                test.append(f"{action}/{video}.avi")
    text(os.path.join(d, "ucfTrainTestlist", "trainlist01.txt"), train)
    text(os.path.join(d, "ucfTrainTestlist", "testlist01.txt"), test)
    return expect("UCF101", [f for _, f in UCF], (20, 5, 15))


# ------------------------------------------------------------------ ImageNet and its variants
IMAGENET = [("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
            ("n01491361", "tiger shark"), ("n01494475", "hammerhead shark"), ("n01496331", "electric ray")]


def imagenet_classnames(path):
    text(path, [f"{w} {n}" for w, n in IMAGENET])


def make_imagenet(root):
    d = os.path.join(root, "imagenet")
    imagenet_classnames(os.path.join(d, "classnames.txt"))
    for w, _ in IMAGENET:
        for i in range(6):
            img(os.path.join(d, "images", "train", w, f"{w}_{i}.JPEG"))
        for i in range(2):
            img(os.path.join(d, "images", "val", w, f"ILSVRC2012_val_{w}_{i}.JPEG"))
    return expect("ImageNet", [n for _, n in IMAGENET], (36, 12, 12))


def make_imagenetv2(root):
    d = os.path.join(root, "imagenetv2")
    imagenet_classnames(os.path.join(d, "classnames.txt"))
    for c in range(len(IMAGENET)):
        for i in range(3):
            img(os.path.join(d, "imagenetv2-matched-frequency-format-val", str(c), f"{c}{i}abc.jpeg"))
    return expect("ImageNetV2", [n for _, n in IMAGENET], (0, 0, 18))


def make_imagenet_sketch(root):
    # class names only in imagenet/classnames.txt (the fallback location)
    imagenet_classnames(os.path.join(root, "imagenet", "classnames.txt"))
    for w, _ in IMAGENET:
        for i in range(3):
            img(os.path.join(root, "imagenet-sketch", "images", w, f"sketch_{i}.JPEG"))
    return expect("ImageNetSketch", [n for _, n in IMAGENET], (0, 0, 18))


def _imagenet_subset(root, dirname, sub, picks, name):
    d = os.path.join(root, dirname)
    imagenet_classnames(os.path.join(d, "classnames.txt"))
    text(os.path.join(d, sub, "README.txt"), ["not a class"])
    for j in picks:
        w = IMAGENET[j][0]
        for i in range(3):
            img(os.path.join(d, sub, w, f"{i}.jpg"))
    return expect(name, [IMAGENET[j][1] for j in sorted(picks)], (0, 0, 3 * len(picks)))


def make_imagenet_a(root):
    return _imagenet_subset(root, "imagenet-adversarial", "imagenet-a", [1, 2, 4], "ImageNetA")


def make_imagenet_r(root):
    return _imagenet_subset(root, "imagenet-rendition", "imagenet-r", [0, 2, 3, 5], "ImageNetR")


# ------------------------------------------------------------------ multi-label
COCO_CATS = [{"id": 7, "name": "train"}, {"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"},
             {"id": 5, "name": "airplane"}, {"id": 3, "name": "car"}]
COCO_NAMES = ["person", "bicycle", "car", "airplane", "train"]  # category-id order
COCO_IDS = [1, 2, 3, 5, 7]


def coco_instances(path, image_dir, prefix, positives, extra_unlabelled=1, start_id=1):
    """Write an instances file; ``positives``: per image, list of class indices (id order)."""
    images, anns = [], []
    for k, pos in enumerate(list(positives) + [[]] * extra_unlabelled):
        iid = start_id + k
        fname = f"{prefix}{iid:012d}.jpg"
        img(os.path.join(image_dir, fname))
        images.append({"id": iid, "file_name": fname, "height": 4, "width": 4})
        for c in pos:
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": COCO_IDS[c], "iscrowd": 0,
                         "bbox": [0, 0, 1, 1], "area": 1})
            if c == 0:  # a second instance of the same class must not matter
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": COCO_IDS[c], "iscrowd": 1,
                             "bbox": [0, 0, 1, 1], "area": 1})
    jdump(path, {"images": images, "annotations": anns, "categories": COCO_CATS})
    return images


def coco_positives(n):
    return [sorted({k % 5} | ({(k + 2) % 5} if k % 3 == 0 else set())) for k in range(n)]


def make_coco2014(root):
    d = os.path.join(root, "coco")
    coco_instances(os.path.join(d, "annotations", "instances_train2014.json"), os.path.join(d, "train2014"),
                   "COCO_train2014_", coco_positives(14))
    coco_instances(os.path.join(d, "annotations", "instances_val2014.json"), os.path.join(d, "val2014"),
                   "COCO_val2014_", coco_positives(8), start_id=500)
    jdump(os.path.join(d, "annotations", "captions_train2017.json"), {"annotations": [
        {"image_id": 1, "id": 1, "caption": "A man riding a bike down the street."},
        {"image_id": 1, "id": 2, "caption": "Two cars and a train at a crossing"},
        {"image_id": 2, "id": 3, "caption": "A bowl of fruit on a table."},
    ]})
    return expect("COCO2014", COCO_NAMES, (14, 0, 8), multilabel=True)


VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
       "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
VOC_NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining table",
             "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv monitor"]


def voc_split(voc_dir, split, ids, value):
    """``value(k, c)`` -> "1", "-1" or "0" for image k and class c."""
    for k, i in enumerate(ids):
        img(os.path.join(voc_dir, "JPEGImages", f"{i}.jpg"))
    text(os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt"), ids)
    for c, cls in enumerate(VOC):
        text(os.path.join(voc_dir, "ImageSets", "Main", f"{cls}_{split}.txt"),
             [f"{i} {value(k, c):>2}" for k, i in enumerate(ids)])


def voc_value(k, c):
    if c == k % 20 or c == (k * 7 + 3) % 20:
        return "1"
    if k % 4 == 0 and c == (k + 1) % 20:
        return "0"
    return "-1"


def make_voc2007(root):
    v = os.path.join(root, "VOCdevkit", "VOC2007")
    voc_split(v, "trainval", [f"{i:06d}" for i in range(1, 25)], voc_value)
    voc_split(v, "test", [f"{i:06d}" for i in range(100, 108)], voc_value)
    os.makedirs(os.path.join(v, "Annotations"), exist_ok=True)
    return expect("VOC2007", VOC_NAMES, (24, 0, 8), multilabel=True)


NUS = ["airport", "animal", "beach", "bear", "birds"]


def make_nuswide(root):
    d = os.path.join(root, "nuswide")
    text(os.path.join(d, "Concepts81.txt"), NUS)
    for tag, n, windows_prefix in (("Train", 13, ""), ("Test", 9, "C:\\ImageData\\Flickr\\")):
        lines, labels = [], np.zeros((n, len(NUS)), dtype=int)
        for k in range(n):
            folder = NUS[k % 5]
            fname = f"{k:04d}_{1000 + k}.jpg"
            img(os.path.join(d, "Flickr", folder, fname))
            lines.append(f"{windows_prefix}{folder}\\{fname}")
            if k < n - 1:  # the last image has no positive and is left out
                labels[k, k % 5] = 1
                labels[k, (k + 1) % 5] = k % 2
        text(os.path.join(d, "ImageList", f"{tag}Imagelist.txt"), lines)
        for c, concept in enumerate(NUS):
            text(os.path.join(d, "TrainTestLabels", f"Labels_{concept}_{tag}.txt"), [str(v) for v in labels[:, c]])
    return expect("NUSWIDE", NUS, (12, 0, 8), multilabel=True)


def coco_lt_positives():
    pos = []
    for k in range(120):  # class 0 in all (head), 1 in 30 (medium), 2/3/4 in 5/3/2 (tail)
        p = {0}
        if k < 30:
            p.add(1)
        if k % 20 == 0 or k in (1, 2):
            p.add(2)
        if k in (3, 4, 5):
            p.add(3)
        if k in (6, 7):
            p.add(4)
        pos.append(sorted(p))
    return pos


def make_coco_lt(root):
    d = os.path.join(root, "coco")
    pos = coco_lt_positives() + [[4]] * 10  # 10 images outside the long-tail list
    images = coco_instances(os.path.join(d, "annotations", "instances_train2017.json"), os.path.join(d, "train2017"),
                            "", pos)
    ids = [im["id"] for im in images[:120]][::-1]  # list order is kept
    text(os.path.join(d, "longtail2017", "img_id.txt"), [str(i) for i in ids])
    coco_instances(os.path.join(d, "annotations", "instances_val2017.json"), os.path.join(d, "val2017"), "",
                   coco_positives(6), start_id=9000)
    return expect("COCOLT", COCO_NAMES, (120, 0, 6), multilabel=True,
                  groups={"head": [0], "medium": [1], "tail": [2, 3, 4]})


def voclt_value(k, c):
    if c == 14:  # person: every image (head)
        return "1"
    if c == 11 and k < 25:  # dog: medium
        return "1"
    if c == k % 20 and k < 60 and c not in (11, 14):
        return "1"
    return "-1"


def make_voc_lt(root):
    ddir = os.path.join(root, "VOCdevkit")
    ids = [f"2008_{i:06d}" for i in range(110)]
    voc_split(os.path.join(ddir, "VOC2012"), "trainval", ids + ["2009_000001", "2009_000002"], voclt_value)
    text(os.path.join(ddir, "longtail2012", "img_id.txt"), ids)
    voc_split(os.path.join(ddir, "VOC2007"), "test", [f"{i:06d}" for i in range(100, 108)], voc_value)
    tail = [c for c in range(20) if c not in (11, 14)]
    return expect("VOCLT", VOC_NAMES, (110, 0, 8), multilabel=True,
                  groups={"head": [14], "medium": [11], "tail": tail})


WRITERS = {
    "ImageNet": make_imagenet, "Caltech101": make_caltech101, "OxfordPets": make_oxford_pets,
    "StanfordCars": make_stanford_cars, "OxfordFlowers": make_oxford_flowers, "Food101": make_food101,
    "FGVCAircraft": make_fgvc_aircraft, "SUN397": make_sun397, "DescribableTextures": make_dtd,
    "EuroSAT": make_eurosat, "UCF101": make_ucf101, "ImageNetV2": make_imagenetv2,
    "ImageNetSketch": make_imagenet_sketch, "ImageNetA": make_imagenet_a, "ImageNetR": make_imagenet_r,
    "COCO2014": make_coco2014, "VOC2007": make_voc2007, "NUSWIDE": make_nuswide, "COCOLT": make_coco_lt,
    "VOCLT": make_voc_lt,
}
STEMS = {
    "ImageNet": "imagenet", "Caltech101": "caltech101", "OxfordPets": "oxford_pets", "StanfordCars": "stanford_cars",
    "OxfordFlowers": "oxford_flowers", "Food101": "food101", "FGVCAircraft": "fgvc_aircraft", "SUN397": "sun397",
    "DescribableTextures": "dtd", "EuroSAT": "eurosat", "UCF101": "ucf101", "ImageNetV2": "imagenetv2",
    "ImageNetSketch": "imagenet_sketch", "ImageNetA": "imagenet_a", "ImageNetR": "imagenet_r",
    "COCO2014": "coco2014", "VOC2007": "voc2007", "NUSWIDE": "nuswide", "COCOLT": "coco_lt", "VOCLT": "voc_lt",
}
