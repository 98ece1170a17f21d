"""The offline default: a synthetic WebShop catalogue generated in code, in the real files' raw format.

`generate_raw(seed)` returns the three structures WebShop reads (`items_shuffle_1000.json`: a product
list; `items_ins_v2_1000.json`: asin -> attributes; `items_human_ins.json`: asin -> human instructions),
so the synthetic catalogue goes through the same cleaning and goal code as a real data dir.

About 1000 products over WebShop's five categories (beauty, electronics, fashion, food, furniture),
40 product types of 25 products each. Products of one type share the type's noun and draw 3-5
attributes from the type's two-word attribute vocabulary (the style of `items_ins_v2`), so an
instruction's words match many products and BM25 must rank on the attribute and option words: search
is not trivial. Instructions are written the way WebShop's crowd workers wrote theirs: lower case,
varied phrasing, 1-3 attributes and most option values of the product they describe; about 1 in 15 has
no attribute and is skipped by goal generation, as upstream skips such instructions.
Everything is drawn from one `random.Random(seed)`: the same seed gives the same catalogue.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any

PRODUCTS_PER_TYPE = 25

APPAREL = [
    "black",
    "white",
    "navy blue",
    "heather grey",
    "charcoal",
    "olive green",
    "burgundy",
    "royal blue",
    "khaki",
    "red",
    "light pink",
    "dark green",
]
SHOE_COLORS = ["black", "white", "grey", "navy", "pink", "black | white", "beige", "brown", "tan"]
DENIM = ["dark wash", "light wash", "medium indigo", "black", "stonewash blue", "grey"]
TECH = ["black", "white", "silver", "space gray", "blue", "red", "rose gold"]
HOME = ["grey", "beige", "navy blue", "white", "black", "dark brown", "walnut", "light grey", "emerald green", "cream"]
LIP = ["ruby red", "nude pink", "berry", "coral", "mauve", "classic red", "plum", "rose"]
HAIR = ["natural black", "dark brown", "medium brown", "honey blonde", "ash blonde", "auburn", "platinum blonde"]
NAIL = ["cherry red", "soft pink", "lavender", "midnight blue", "nude", "gold glitter", "mint green", "white"]
APPAREL_SIZES = ["x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large"]
SHOE_SIZES = ["6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "11", "12"]
JEANS = ["28w x 30l", "30w x 30l", "30w x 32l", "32w x 32l", "34w x 32l", "36w x 32l", "38w x 34l"]
BED = ["twin", "full", "queen", "king", "california king"]
FL_OZ = ["2 fl oz", "4 fl oz", "8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz"]
OUNCE = ["1.7 ounce", "2.5 ounce", "3.4 ounce", "5 ounce"]
COUNT = [
    "6 count (pack of 1)",
    "12 count (pack of 1)",
    "12 count (pack of 2)",
    "24 count (pack of 1)",
    "36 count (pack of 1)",
]
POUND = ["12 ounce (pack of 1)", "1 pound (pack of 1)", "2 pound (pack of 1)", "5 pound (pack of 1)"]
PHONES = ["iphone 13", "iphone 13 pro", "iphone 14", "iphone 14 pro max", "galaxy s22", "galaxy s23", "pixel 7"]
FEET = ["3 feet", "6 feet", "10 feet", "15 feet", "25 feet"]
PILLOW = ["16 x 16 inch", "18 x 18 inch", "20 x 20 inch", "24 x 24 inch"]
RUG = ["2' x 3'", "3' x 5'", "4' x 6'", "5' x 7'", "8' x 10'"]
CURTAIN = ["52w x 63l", "52w x 84l", "52w x 96l", "42w x 63l"]
TV = ["32 inch", "43 inch", "55 inch", "65 inch", "75 inch"]
HAIR_LEN = ["14 inch", "16 inch", "18 inch", "20 inch", "22 inch", "24 inch"]


@dataclass(frozen=True)
class ProductType:
    category: str
    query: str
    product_category: str
    noun: str  # title head ("T-Shirt")
    ins_nouns: tuple[str, ...]  # how people name it in instructions
    audience: tuple[str, ...]  # title prefixes ("Men's")
    attrs: tuple[str, ...]  # two-word attribute vocabulary (items_ins_v2 style)
    extras: tuple[str, ...]  # more title descriptors
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price: tuple[float, float]
    plural: bool = False  # ins_nouns are plural ("leggings")


def _t(category, query, pc, noun, ins, aud, attrs, extras, options, price, plural=False) -> ProductType:
    return ProductType(
        category,
        query,
        pc,
        noun,
        tuple(ins),
        tuple(aud),
        tuple(attrs),
        tuple(extras),
        tuple((k, tuple(v)) for k, v in options.items()),
        price,
        plural,
    )


_CSJ = "Clothing, Shoes & Jewelry"
_BPC = "Beauty & Personal Care"
_EL = "Electronics"
_GR = "Grocery & Gourmet Food"
_HK = "Home & Kitchen"

TYPES: tuple[ProductType, ...] = (
    # fashion
    _t(
        "fashion",
        "men's t-shirts",
        f"{_CSJ} › Men › Clothing › Shirts › T-Shirts",
        "T-Shirt",
        ["t-shirt", "tee shirt", "crew neck t-shirt"],
        ["Men's"],
        [
            "machine wash",
            "short sleeve",
            "long sleeve",
            "classic fit",
            "slim fit",
            "cotton spandex",
            "moisture wicking",
            "crew neck",
            "daily wear",
            "relaxed fit",
        ],
        ["Casual Tee", "Workout Shirt", "Basic Top", "Graphic Tee"],
        {"color": APPAREL, "size": APPAREL_SIZES},
        (9, 35),
    ),
    _t(
        "fashion",
        "women's dresses",
        f"{_CSJ} › Women › Clothing › Dresses › Casual",
        "Dress",
        ["dress", "summer dress", "casual dress"],
        ["Women's"],
        [
            "machine wash",
            "hand wash",
            "long sleeve",
            "short sleeve",
            "high waist",
            "polyester spandex",
            "elastic waist",
            "v neck",
            "loose fit",
            "daily wear",
        ],
        ["Floral Midi", "Swing Sundress", "Wrap Dress", "Maxi Dress"],
        {"color": APPAREL, "size": APPAREL_SIZES},
        (19, 59),
    ),
    _t(
        "fashion",
        "men's jeans",
        f"{_CSJ} › Men › Clothing › Jeans",
        "Jeans",
        ["jeans", "denim jeans", "pair of jeans"],
        ["Men's"],
        [
            "machine wash",
            "slim fit",
            "relaxed fit",
            "straight leg",
            "button closure",
            "cotton spandex",
            "zipper closure",
            "classic fit",
            "stretch denim",
        ],
        ["Stretch Denim Pants", "Five Pocket", "Tapered Leg"],
        {"color": DENIM, "size": JEANS},
        (24, 69),
        True,
    ),
    _t(
        "fashion",
        "women's sneakers",
        f"{_CSJ} › Women › Shoes › Fashion Sneakers",
        "Sneakers",
        ["sneakers", "running shoes", "walking shoes"],
        ["Women's"],
        [
            "rubber sole",
            "non slip",
            "lace up",
            "memory foam",
            "arch support",
            "breathable mesh",
            "lightweight sole",
            "slip on",
        ],
        ["Walking Shoes", "Running Shoes", "Tennis Shoes", "Athletic Trainers"],
        {"color": SHOE_COLORS, "size": SHOE_SIZES},
        (29, 89),
        True,
    ),
    _t(
        "fashion",
        "men's hoodies",
        f"{_CSJ} › Men › Clothing › Active › Active Hoodies",
        "Hoodie",
        ["hoodie", "hooded sweatshirt", "pullover hoodie"],
        ["Men's"],
        [
            "machine wash",
            "long sleeve",
            "fleece lined",
            "drawstring closure",
            "kangaroo pocket",
            "cotton blend",
            "zip up",
            "relaxed fit",
        ],
        ["Pullover Sweatshirt", "Athletic Hoodie", "Full Zip Jacket"],
        {"color": APPAREL, "size": APPAREL_SIZES},
        (19, 55),
    ),
    _t(
        "fashion",
        "women's leggings",
        f"{_CSJ} › Women › Clothing › Active › Active Leggings",
        "Leggings",
        ["leggings", "yoga pants", "workout leggings"],
        ["Women's"],
        [
            "high waist",
            "tummy control",
            "polyester spandex",
            "moisture wicking",
            "squat proof",
            "machine wash",
            "side pockets",
            "butt lifting",
        ],
        ["Yoga Pants", "Workout Tights", "Running Leggings"],
        {"color": APPAREL, "size": APPAREL_SIZES},
        (12, 39),
        True,
    ),
    _t(
        "fashion",
        "men's boots",
        f"{_CSJ} › Men › Shoes › Boots › Work & Safety",
        "Boots",
        ["boots", "work boots", "ankle boots"],
        ["Men's"],
        [
            "rubber sole",
            "water resistant",
            "steel toe",
            "slip resistant",
            "leather upper",
            "lace up",
            "ankle support",
            "memory foam",
        ],
        ["Work Boots", "Chukka Boots", "Hiking Boots"],
        {"color": SHOE_COLORS, "size": SHOE_SIZES},
        (49, 149),
        True,
    ),
    _t(
        "fashion",
        "women's sandals",
        f"{_CSJ} › Women › Shoes › Sandals › Flat Sandals",
        "Sandals",
        ["sandals", "flat sandals", "summer sandals"],
        ["Women's"],
        ["open toe", "ankle strap", "rubber sole", "arch support", "non slip", "memory foam", "adjustable strap"],
        ["Flat Sandals", "Slide Sandals", "Beach Sandals"],
        {"color": SHOE_COLORS, "size": SHOE_SIZES},
        (15, 49),
        True,
    ),
    # beauty
    _t(
        "beauty",
        "shampoo",
        f"{_BPC} › Hair Care › Shampoo & Conditioner › Shampoos",
        "Shampoo",
        ["shampoo", "hair shampoo"],
        [""],
        [
            "sulfate free",
            "paraben free",
            "dry hair",
            "hair growth",
            "natural ingredients",
            "cruelty free",
            "color treated",
            "tea tree",
            "argan oil",
            "damaged hair",
        ],
        ["Moisturizing Formula", "Daily Cleansing Shampoo", "Volumizing Shampoo"],
        {"size": FL_OZ},
        (7, 32),
    ),
    _t(
        "beauty",
        "face moisturizer",
        f"{_BPC} › Skin Care › Face › Creams & Moisturizers › Face Moisturizers",
        "Face Moisturizer",
        ["face moisturizer", "face cream", "moisturizing cream"],
        [""],
        [
            "dry skin",
            "sensitive skin",
            "hyaluronic acid",
            "fragrance free",
            "oil free",
            "anti aging",
            "fine lines",
            "cruelty free",
            "paraben free",
        ],
        ["Daily Face Cream", "Night Cream", "Hydrating Gel Cream"],
        {"size": OUNCE},
        (11, 49),
    ),
    _t(
        "beauty",
        "lipstick",
        f"{_BPC} › Makeup › Lips › Lipstick",
        "Lipstick",
        ["lipstick", "matte lipstick", "lip color"],
        [""],
        [
            "long lasting",
            "cruelty free",
            "matte finish",
            "highly pigmented",
            "paraben free",
            "moisturizing formula",
            "transfer proof",
        ],
        ["Liquid Lip Color", "Creamy Lipstick", "Velvet Lip Stain"],
        {"color": LIP},
        (6, 29),
    ),
    _t(
        "beauty",
        "hair extensions",
        f"{_BPC} › Hair Care › Hair Extensions, Wigs & Accessories › Extensions",
        "Hair Extensions",
        ["hair extensions", "clip in hair extensions", "hair extension"],
        [""],
        [
            "natural looking",
            "clip in",
            "human hair",
            "heat resistant",
            "easy apply",
            "long lasting",
            "straight hair",
            "synthetic hair",
        ],
        ["Full Head Hairpieces", "Seamless Weft", "Double Weft"],
        {"color": HAIR, "size": HAIR_LEN},
        (19, 99),
        True,
    ),
    _t(
        "beauty",
        "makeup brushes",
        f"{_BPC} › Tools & Accessories › Makeup Brushes & Tools › Brush Sets",
        "Makeup Brush Set",
        ["makeup brush set", "makeup brushes", "brush set"],
        [""],
        [
            "synthetic hair",
            "cruelty free",
            "easy clean",
            "travel size",
            "high quality",
            "easy carry",
            "storage case",
            "soft bristles",
        ],
        ["Foundation Brushes", "Eyeshadow Blending Kit", "Professional Brushes"],
        {"color": TECH},
        (8, 35),
    ),
    _t(
        "beauty",
        "nail polish",
        f"{_BPC} › Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish",
        "Nail Polish",
        ["nail polish", "gel nail polish", "nail lacquer"],
        [""],
        ["long lasting", "quick dry", "non toxic", "cruelty free", "gel polish", "chip resistant", "high gloss"],
        ["Gel Nail Lacquer", "Glossy Polish", "Salon Color"],
        {"color": NAIL},
        (5, 22),
    ),
    _t(
        "beauty",
        "deodorant",
        f"{_BPC} › Personal Care › Deodorants & Antiperspirants › Deodorant",
        "Deodorant",
        ["deodorant", "natural deodorant", "deodorant stick"],
        ["Men's", "Women's", ""],
        [
            "aluminum free",
            "natural ingredients",
            "long lasting",
            "sensitive skin",
            "cruelty free",
            "baking soda",
            "paraben free",
        ],
        ["Deodorant Stick", "Odor Protection", "Fresh Scent"],
        {"scent": ["lavender", "unscented", "eucalyptus mint", "coconut", "cedarwood", "citrus"]},
        (6, 19),
    ),
    _t(
        "beauty",
        "electric toothbrush",
        f"{_BPC} › Oral Care › Toothbrushes & Accessories › Electric Toothbrushes",
        "Electric Toothbrush",
        ["electric toothbrush", "sonic toothbrush", "rechargeable toothbrush"],
        [""],
        [
            "oral care",
            "travel case",
            "easy clean",
            "sensitive teeth",
            "brush heads",
            "fast charging",
            "smart timer",
            "teeth whitening",
        ],
        ["Sonic Toothbrush", "Rechargeable Toothbrush", "Whitening Toothbrush"],
        {"color": TECH},
        (19, 89),
    ),
    # electronics
    _t(
        "electronics",
        "wireless earbuds",
        f"{_EL} › Headphones, Earbuds & Accessories › Earbud Headphones",
        "Wireless Earbuds",
        ["wireless earbuds", "bluetooth earbuds", "earbuds"],
        [""],
        [
            "noise cancelling",
            "wireless bluetooth",
            "hands free",
            "fast charging",
            "water resistant",
            "stereo sound",
            "charging case",
            "long battery",
        ],
        ["Bluetooth 5.3 Headphones", "True Wireless Earphones", "In Ear Headset"],
        {"color": TECH},
        (19, 129),
        True,
    ),
    _t(
        "electronics",
        "phone case",
        f"{_EL} › Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases",
        "Phone Case",
        ["phone case", "protective case", "slim case"],
        [""],
        [
            "shock absorbing",
            "wireless charging",
            "heavy duty",
            "screen protector",
            "slim fit",
            "drop protection",
            "raised edges",
            "kickstand design",
        ],
        ["Protective Cover", "Slim Bumper", "Clear Case"],
        {"color": TECH, "style": PHONES},
        (8, 29),
    ),
    _t(
        "electronics",
        "hdmi cable",
        f"{_EL} › Television & Video › Accessories › Cables › HDMI Cables",
        "HDMI Cable",
        ["hdmi cable", "high speed hdmi cable", "hdmi cord"],
        [""],
        ["high speed", "gold plated", "ultra hd", "plug play", "high definition", "braided cord", "ethernet channel"],
        ["4K 60Hz Cord", "8K Ultra Cable", "HDMI 2.1 Cable"],
        {"size": FEET},
        (6, 25),
    ),
    _t(
        "electronics",
        "bluetooth speaker",
        f"{_EL} › Portable Audio & Video › Portable Speakers & Docks",
        "Bluetooth Speaker",
        ["bluetooth speaker", "portable speaker", "wireless speaker"],
        [""],
        [
            "wireless bluetooth",
            "water resistant",
            "stereo sound",
            "long battery",
            "easy carry",
            "hands free",
            "deep bass",
            "outdoor use",
        ],
        ["Portable Wireless Speaker", "Outdoor Speaker", "Waterproof Speaker"],
        {"color": TECH},
        (19, 99),
    ),
    _t(
        "electronics",
        "tv wall mount",
        f"{_EL} › Television & Video › Accessories › TV Mounts, Stands & Turntables",
        "TV Wall Mount",
        ["tv wall mount", "tv mount", "wall mount bracket"],
        [""],
        [
            "heavy duty",
            "easy install",
            "full motion",
            "living room",
            "tilt swivel",
            "cable management",
            "steel construction",
        ],
        ["Full Motion Bracket", "Tilting Mount", "Articulating Arm"],
        {"size": TV},
        (19, 79),
    ),
    _t(
        "electronics",
        "usb c charger",
        f"{_EL} › Cell Phones & Accessories › Chargers & Power Adapters › Wall Chargers",
        "USB C Charger",
        ["usb c charger", "wall charger", "fast charger"],
        [""],
        [
            "fast charging",
            "usb port",
            "high speed",
            "compact design",
            "travel size",
            "power delivery",
            "overheat protection",
        ],
        ["Fast Wall Charger", "PD Power Adapter", "Charging Block"],
        {"color": TECH},
        (9, 39),
    ),
    _t(
        "electronics",
        "screen protector",
        f"{_EL} › Cell Phones & Accessories › Accessories › Screen Protectors",
        "Screen Protector",
        ["screen protector", "tempered glass screen protector", "glass protector"],
        [""],
        [
            "tempered glass",
            "easy install",
            "bubble free",
            "high definition",
            "case friendly",
            "scratch resistant",
            "anti glare",
        ],
        ["Tempered Glass Film", "Privacy Glass", "HD Clear Protector"],
        {"style": PHONES},
        (5, 19),
    ),
    _t(
        "electronics",
        "wireless keyboard",
        f"{_EL} › Computers & Accessories › Computer Accessories › Keyboards",
        "Wireless Keyboard",
        ["wireless keyboard", "bluetooth keyboard", "keyboard"],
        [""],
        [
            "wireless bluetooth",
            "plug play",
            "home office",
            "usb receiver",
            "quiet keys",
            "long battery",
            "ergonomic design",
        ],
        ["Slim Keyboard", "Full Size Keyboard", "Keyboard and Mouse Combo"],
        {"color": TECH},
        (15, 69),
    ),
    _t(
        "electronics",
        "security camera",
        f"{_EL} › Camera & Photo › Video Surveillance › Surveillance Cameras",
        "Security Camera",
        ["security camera", "home security camera", "outdoor camera"],
        [""],
        [
            "night vision",
            "motion detection",
            "high definition",
            "easy install",
            "two way",
            "cloud storage",
            "weather resistant",
        ],
        ["1080P WiFi Camera", "Outdoor Surveillance Cam", "Indoor Pet Camera"],
        {"color": TECH},
        (25, 119),
    ),
    # food
    _t(
        "food",
        "coffee beans",
        f"{_GR} › Beverages › Coffee, Tea & Cocoa › Coffee › Whole Coffee Beans",
        "Whole Bean Coffee",
        ["coffee beans", "whole bean coffee", "coffee"],
        [""],
        ["medium roast", "dark roast", "fair trade", "usda organic", "single origin", "non gmo", "low acid"],
        ["Arabica Beans", "Espresso Roast", "Breakfast Blend"],
        {"flavor name": ["original", "vanilla", "hazelnut", "french roast", "colombian", "caramel"], "size": POUND},
        (9, 39),
    ),
    _t(
        "food",
        "protein bars",
        f"{_GR} › Snack Foods › Bars › Protein Bars",
        "Protein Bars",
        ["protein bars", "snack bars", "protein snack bars"],
        [""],
        ["gluten free", "low sugar", "high protein", "non gmo", "keto friendly", "plant based", "individually wrapped"],
        ["Snack Bars", "Meal Replacement Bars", "Energy Bars"],
        {
            "flavor name": [
                "chocolate chip",
                "peanut butter",
                "cookies and cream",
                "salted caramel",
                "birthday cake",
                "almond butter",
            ],
            "size": COUNT,
        },
        (14, 45),
        True,
    ),
    _t(
        "food",
        "herbal tea",
        f"{_GR} › Beverages › Coffee, Tea & Cocoa › Tea › Herbal",
        "Herbal Tea",
        ["herbal tea", "tea bags", "tea"],
        [""],
        [
            "caffeine free",
            "usda organic",
            "non gmo",
            "gluten free",
            "individually wrapped",
            "natural ingredients",
            "kosher certified",
        ],
        ["Tea Bags", "Loose Leaf Tea", "Wellness Tea"],
        {
            "flavor name": ["chamomile", "peppermint", "ginger lemon", "hibiscus", "rooibos", "lavender"],
            "size": ["20 count (pack of 1)", "20 count (pack of 6)", "40 count (pack of 2)"],
        },
        (5, 29),
    ),
    _t(
        "food",
        "potato chips",
        f"{_GR} › Snack Foods › Chips & Crisps › Potato",
        "Potato Chips",
        ["potato chips", "chips", "kettle chips"],
        [""],
        ["gluten free", "low sodium", "non gmo", "plant based", "kettle cooked", "individually wrapped", "low calorie"],
        ["Kettle Cooked Chips", "Snack Packs", "Crunchy Crisps"],
        {
            "flavor name": ["sea salt", "barbecue", "sour cream and onion", "salt and vinegar", "jalapeno"],
            "size": ["1 ounce (pack of 24)", "1.5 ounce (pack of 12)", "8 ounce (pack of 4)"],
        },
        (8, 29),
        True,
    ),
    _t(
        "food",
        "olive oil",
        f"{_GR} › Pantry Staples › Cooking Oils, Vinegars & Sprays › Oils › Olive",
        "Olive Oil",
        ["olive oil", "extra virgin olive oil", "cooking oil"],
        [""],
        ["extra virgin", "cold pressed", "non gmo", "usda organic", "single origin", "glass bottle"],
        ["Cooking Oil", "First Cold Press", "Mediterranean Blend"],
        {
            "size": [
                "16.9 fl oz (pack of 1)",
                "25.3 fl oz (pack of 1)",
                "33.8 fl oz (pack of 1)",
                "101 fl oz (pack of 1)",
            ]
        },
        (9, 49),
    ),
    _t(
        "food",
        "dark chocolate",
        f"{_GR} › Candy & Chocolate › Chocolate › Chocolate Bars",
        "Dark Chocolate",
        ["dark chocolate", "chocolate bars", "dark chocolate bar"],
        [""],
        ["dairy free", "sugar free", "fair trade", "non gmo", "individually wrapped", "gift box", "gluten free"],
        ["Chocolate Bar", "Cacao Squares", "Gourmet Chocolate"],
        {
            "flavor name": ["sea salt", "mint", "orange", "raspberry", "almond", "espresso"],
            "size": ["3 ounce (pack of 4)", "3 ounce (pack of 12)", "10 count (pack of 1)"],
        },
        (7, 39),
    ),
    _t(
        "food",
        "beef jerky",
        f"{_GR} › Meat & Seafood › Jerky & Dried Meats › Beef Jerky",
        "Beef Jerky",
        ["beef jerky", "jerky", "meat snack"],
        [""],
        ["high protein", "low fat", "gluten free", "grass fed", "low carb", "resealable bag", "no preservatives"],
        ["Meat Snacks", "Jerky Strips", "Smoked Jerky"],
        {
            "flavor name": ["original", "teriyaki", "peppered", "sweet and spicy", "hickory smoked"],
            "size": ["2.85 ounce (pack of 1)", "3.25 ounce (pack of 4)", "10 ounce (pack of 1)"],
        },
        (8, 39),
    ),
    _t(
        "food",
        "mixed nuts",
        f"{_GR} › Snack Foods › Nuts & Seeds › Mixed Nuts",
        "Mixed Nuts",
        ["mixed nuts", "nuts", "trail mix"],
        [""],
        ["non gmo", "low sodium", "gluten free", "keto friendly", "resealable bag", "high protein", "dry roasted"],
        ["Deluxe Nut Mix", "Roasted Nuts", "Snack Mix"],
        {"flavor name": ["lightly salted", "unsalted", "honey roasted", "sea salt"], "size": POUND},
        (9, 35),
        True,
    ),
    # furniture
    _t(
        "furniture",
        "office chair",
        f"{_HK} › Furniture › Home Office Furniture › Home Office Desk Chairs",
        "Office Chair",
        ["office chair", "desk chair", "computer chair"],
        [""],
        [
            "lumbar support",
            "height adjustable",
            "home office",
            "easy assemble",
            "pu leather",
            "mesh back",
            "heavy duty",
            "swivel wheels",
        ],
        ["Ergonomic Desk Chair", "Executive Chair", "Task Chair with Arms"],
        {"color": HOME},
        (59, 229),
    ),
    _t(
        "furniture",
        "coffee table",
        f"{_HK} › Furniture › Living Room Furniture › Tables › Coffee Tables",
        "Coffee Table",
        ["coffee table", "living room table", "center table"],
        [""],
        [
            "living room",
            "solid wood",
            "easy assemble",
            "storage space",
            "mid century",
            "engineered wood",
            "metal frame",
            "lift top",
        ],
        ["Modern Cocktail Table", "Rustic Table", "Round Table"],
        {"color": HOME},
        (49, 249),
    ),
    _t(
        "furniture",
        "bed frame",
        f"{_HK} › Furniture › Bedroom Furniture › Beds, Frames & Bases › Beds",
        "Bed Frame",
        ["bed frame", "platform bed frame", "platform bed"],
        [""],
        [
            "box spring",
            "easy assemble",
            "metal frame",
            "solid wood",
            "storage space",
            "heavy duty",
            "noise free",
            "under bed storage",
        ],
        ["Platform Bed", "Upholstered Bed", "Wood Slat Support"],
        {"color": HOME, "size": BED},
        (89, 399),
    ),
    _t(
        "furniture",
        "throw pillow covers",
        f"{_HK} › Bedding › Decorative Pillows, Inserts & Covers › Throw Pillow Covers",
        "Throw Pillow Covers",
        ["throw pillow covers", "pillow covers", "cushion covers"],
        [""],
        ["living room", "machine washable", "double sided", "hidden zipper", "home decor", "super soft", "set of two"],
        ["Cushion Cases", "Decorative Covers", "Velvet Pillow Shams"],
        {"color": HOME, "size": PILLOW},
        (9, 29),
        True,
    ),
    _t(
        "furniture",
        "area rug",
        f"{_HK} › Home Décor › Area Rugs, Runners & Pads › Area Rugs",
        "Area Rug",
        ["area rug", "rug", "living room rug"],
        [""],
        ["living room", "non slip", "easy clean", "dining room", "machine washable", "pet friendly", "high pile"],
        ["Shag Rug", "Vintage Carpet", "Boho Rug"],
        {"color": HOME, "size": RUG},
        (29, 189),
    ),
    _t(
        "furniture",
        "bookshelf",
        f"{_HK} › Furniture › Home Office Furniture › Bookcases",
        "Bookshelf",
        ["bookshelf", "bookcase", "storage shelf"],
        [""],
        [
            "storage space",
            "easy assemble",
            "living room",
            "home office",
            "engineered wood",
            "industrial style",
            "metal frame",
        ],
        ["5 Tier Bookcase", "Ladder Shelf", "Open Display Shelf"],
        {"color": HOME},
        (39, 199),
    ),
    _t(
        "furniture",
        "blackout curtains",
        f"{_HK} › Home Décor › Window Treatments › Curtains & Drapes › Panels",
        "Blackout Curtains",
        ["blackout curtains", "curtains", "window curtains"],
        [""],
        [
            "living room",
            "thermal insulated",
            "machine washable",
            "light blocking",
            "noise reducing",
            "grommet top",
            "bedroom decor",
        ],
        ["Curtain Panels", "Room Darkening Drapes", "Window Treatment Set"],
        {"color": HOME, "size": CURTAIN},
        (15, 59),
        True,
    ),
    _t(
        "furniture",
        "tv stand",
        f"{_HK} › Furniture › Living Room Furniture › TV & Media Furniture › Television Stands",
        "TV Stand",
        ["tv stand", "media console", "entertainment center"],
        [""],
        [
            "living room",
            "storage space",
            "easy assemble",
            "engineered wood",
            "cable management",
            "solid wood",
            "mid century",
        ],
        ["Media Console", "Entertainment Center", "Console Table"],
        {"color": HOME},
        (59, 299),
    ),
)

_SYLLABLES = (
    "lu",
    "mor",
    "ve",
    "na",
    "zi",
    "kor",
    "tal",
    "bri",
    "sen",
    "ar",
    "ox",
    "quin",
    "del",
    "ra",
    "mo",
    "fi",
    "nex",
    "sol",
    "ta",
    "vir",
    "ko",
    "len",
    "dra",
    "pi",
    "ter",
    "au",
    "ry",
    "gol",
    "em",
    "ba",
)
_FILLERS = (
    "Satisfaction guaranteed: if you have any question, contact us and we will reply within 24 hours",
    "Makes a great gift for family and friends on birthdays and holidays",
    "Quality checked before shipping; please allow slight differences in color due to screen settings",
    "Package includes {n} {noun} and a user guide",
    "Designed for everyday use at home, at work or on the go",
    "Made with carefully selected materials for comfort and durability",
)
_ATTR_LINES = (
    "{A}: {brand} {noun} is {a} so you can enjoy it every day",
    "{A} - thoughtfully designed to be {a} without compromise",
    "{A}. Our {noun} stays {a} even after months of use",
    "Why choose us: {a}, with a quality you can feel",
)


def _brand(rng: random.Random) -> str:
    return "".join(rng.sample(_SYLLABLES, rng.choice((2, 2, 3)))).capitalize()


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _price(rng: random.Random, lo: float, hi: float) -> str:
    a = round(rng.uniform(lo, hi)) - 0.01
    if rng.random() < 0.2:
        b = round(a * rng.uniform(1.1, 1.5)) - 0.01
        return f"${a:.2f} - ${b:.2f}"
    return f"${a:.2f}"


def _title_case(phrase: str) -> str:
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in phrase.split())


def _product(rng: random.Random, t: ProductType, taken: set[str]) -> tuple[dict[str, Any], list[str]]:
    brand = _brand(rng)
    attrs = rng.sample(t.attrs, rng.randint(3, min(5, len(t.attrs))))
    in_title = attrs[: rng.randint(1, 2)]
    audience = rng.choice(t.audience)
    title_parts = [brand, audience, *(_title_case(a) for a in in_title), t.noun]
    title = " ".join(p for p in title_parts if p)
    extra = rng.choice(t.extras)
    title += rng.choice((f" {extra}", f" - {extra}", f", {extra}"))
    options = {}
    for name, pool in t.options:
        if rng.random() < 0.88:
            k = rng.randint(2, min(6, len(pool)))
            if name in ("size",):  # sizes come as a contiguous run, as shops list them
                start = rng.randint(0, len(pool) - k)
                options[name] = list(pool[start : start + k])
            else:
                options[name] = rng.sample(pool, k)
    noun = t.noun.lower()
    bullets = []
    for a in attrs[len(in_title) :]:
        if rng.random() < 0.6:  # some attributes live only in the attribute list (items_ins_v2)
            bullets.append(rng.choice(_ATTR_LINES).format(A=a.upper(), a=a, brand=brand, noun=noun))
    fillers = rng.sample(_FILLERS, 3)
    bullets += [f.format(n=rng.randint(1, 4), noun=noun) for f in fillers]
    rng.shuffle(bullets)
    description = (
        f"{brand} {noun}. {rng.choice(t.extras)} made for {rng.choice(('daily', 'everyday', 'home', 'modern'))} use. "
        + (f"It is {attrs[-1]}. " if rng.random() < 0.5 else "")
        + "Please check the size and details before ordering."
    )
    raw = {
        "asin": _asin(rng, taken),
        "name": title,
        "full_description": description,
        "small_description": bullets,
        "pricing": _price(rng, *t.price),
        "images": [f"https://example.invalid/images/{brand.lower()}.jpg"],
        "category": t.category,
        "query": t.query,
        "product_category": t.product_category,
        "customization_options": {
            name.title(): [{"value": v, "image": None} for v in values] for name, values in options.items()
        },
        "brand": brand,
    }
    return raw, attrs


def _join(items: list[str], rng: random.Random) -> str:
    if len(items) == 1:
        return items[0]
    sep = rng.choice((" and ", ", "))
    return ", ".join(items[:-1]) + sep + items[-1] if sep == " and " else ", ".join(items)


def _option_phrase(name: str, value: str, rng: random.Random) -> str:
    forms = {
        "color": ("in {v}", "{v} color", "in the color {v}", "in {v} color"),
        "size": ("in size {v}", "size {v}", "in {v}", "in a {v}"),
        "flavor name": ("{v} flavor", "in {v} flavor", "with {v} flavor"),
        "scent": ("{v} scent", "in {v} scent", "with a {v} scent"),
        "style": ("for {v}", "for my {v}", "that fits {v}"),
    }[name]
    return rng.choice(forms).format(v=value)


def _instruction(rng: random.Random, t: ProductType, attrs: list[str], options: dict[str, list[str]]) -> dict[str, Any]:
    ins_attrs = [] if rng.random() < 1 / 15 else rng.sample(attrs, rng.randint(1, min(3, len(attrs))))
    chosen = [(name, rng.choice(vals)) for name, vals in options.items() if rng.random() < 0.85]
    noun = rng.choice(t.ins_nouns)
    who = ""
    if t.audience[0].startswith("Men"):
        who = rng.choice(("men's ", "", "mens "))
    elif t.audience[0].startswith("Women"):
        who = rng.choice(("women's ", "", "womens "))
    opts = _join([_option_phrase(n, v, rng) for n, v in chosen], rng) if chosen else ""
    attr_text = _join(ins_attrs, rng) if ins_attrs else ""
    thing = f"{who}{noun}"
    plural = t.plural or (noun.endswith("s") and not noun.endswith("ss"))
    art = "" if plural else "a "  # fixed to "an" before a vowel below
    templates = [
        "i'm looking for {art}{attrs} {thing} {opts}",
        "i need {art}{thing} that is {attrs}, {opts}",
        "find me {attrs} {thing} {opts}",
        "i want {art}{attrs} {thing}, {opts}",
        "i would like to buy {art}{thing} which is {attrs}, and {opts}",
        "can you find me {art}{thing}? it should be {attrs}, {opts}",
        "i am searching for {art}{attrs} {thing} for everyday use, {opts}",
    ]
    text = rng.choice(templates).format(art=art, attrs=attr_text, thing=thing, opts=opts)
    text = " ".join(text.replace(" ,", ",").split()).rstrip(", ").replace(", and,", ",")
    if text.endswith(" and"):
        text = text[: -len(" and")].rstrip(", ")
    text = re.sub(r"\ba (?=[aeiou])", "an ", text)
    return {
        "instruction": text,
        "instruction_attributes": ins_attrs,
        "instruction_options": [v for _, v in chosen],
    }


def generate_raw(
    seed: int = 0, per_type: int = PRODUCTS_PER_TYPE
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(products, attributes, human instructions) in the real files' formats; deterministic in `seed`."""
    rng = random.Random(seed)
    taken: set[str] = set()
    products, attributes, human = [], {}, {}
    for t in TYPES:
        for _ in range(per_type):
            raw, attrs = _product(rng, t, taken)
            products.append(raw)
            attributes[raw["asin"]] = {"attributes": attrs}
            options = {k.lower(): [o["value"] for o in v] for k, v in raw["customization_options"].items()}
            n_ins = 0 if rng.random() < 0.3 else (2 if rng.random() < 0.2 else 1)
            if n_ins:
                human[raw["asin"]] = [_instruction(rng, t, attrs, options) for _ in range(n_ins)]
    rng.shuffle(products)  # items_shuffle: product order carries no type information
    return products, attributes, human
