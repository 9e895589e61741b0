"""Word lists and text pools the synthetic corpus is written from.

Everything here is invented or generic (city coordinates are public geography).  The
pools are built once, at import, from a fixed seed, so that every corpus draws from the
same sentences and a study is just a list of picks: building a 25 KB study is a handful
of ``random.choices`` calls (C speed), which is what lets 20,000 studies be generated
in seconds.  Changing anything here changes every corpus; tests compare corpora with
each other, never with stored bytes, so that is allowed.
"""

from __future__ import annotations

import random
import zlib


def _pick(rng: random.Random, seq):  # noqa: ANN001 - hot path
    """``rng.choice`` without its rejection loop (3x faster; plenty uniform here)."""
    return seq[int(rng.random() * len(seq))]


def _int(rng: random.Random, a: int, b: int) -> int:
    """``rng.randint(a, b)``, the fast way (see :func:`_pick`)."""
    return a + int(rng.random() * (b - a + 1))

# --------------------------------------------------------------------------- conditions
#: (condition, body-system branch).  MeSH-like IDs are derived from the name (synthetic).
CONDITIONS: tuple[tuple[str, str], ...] = (
    ("Type 2 Diabetes Mellitus", "Nutritional and Metabolic Diseases"),
    ("Type 1 Diabetes", "Nutritional and Metabolic Diseases"),
    ("Obesity", "Nutritional and Metabolic Diseases"),
    ("Hypertension", "Heart and Blood Diseases"),
    ("Heart Failure", "Heart and Blood Diseases"),
    ("Atrial Fibrillation", "Heart and Blood Diseases"),
    ("Coronary Artery Disease", "Heart and Blood Diseases"),
    ("Stroke", "Nervous System Diseases"),
    ("Alzheimer Disease", "Nervous System Diseases"),
    ("Parkinson Disease", "Nervous System Diseases"),
    ("Multiple Sclerosis", "Nervous System Diseases"),
    ("Migraine", "Nervous System Diseases"),
    ("Epilepsy", "Nervous System Diseases"),
    ("Major Depressive Disorder", "Behaviors and Mental Disorders"),
    ("Generalized Anxiety Disorder", "Behaviors and Mental Disorders"),
    ("Schizophrenia", "Behaviors and Mental Disorders"),
    ("Opioid Use Disorder", "Behaviors and Mental Disorders"),
    ("Insomnia", "Behaviors and Mental Disorders"),
    ("Breast Cancer", "Neoplasms"),
    ("Non-small Cell Lung Cancer", "Neoplasms"),
    ("Colorectal Cancer", "Neoplasms"),
    ("Prostate Cancer", "Neoplasms"),
    ("Pancreatic Cancer", "Neoplasms"),
    ("Hepatocellular Carcinoma", "Neoplasms"),
    ("Gastric Cancer", "Neoplasms"),
    ("Ovarian Cancer", "Neoplasms"),
    ("Melanoma", "Neoplasms"),
    ("Glioblastoma", "Neoplasms"),
    ("Multiple Myeloma", "Neoplasms"),
    ("Acute Myeloid Leukemia", "Neoplasms"),
    ("Chronic Lymphocytic Leukemia", "Neoplasms"),
    ("Diffuse Large B-Cell Lymphoma", "Neoplasms"),
    ("Follicular Lymphoma", "Neoplasms"),
    ("Rheumatoid Arthritis", "Muscle, Bone, and Cartilage Diseases"),
    ("Osteoarthritis, Knee", "Muscle, Bone, and Cartilage Diseases"),
    ("Osteoporosis", "Muscle, Bone, and Cartilage Diseases"),
    ("Psoriasis", "Skin and Connective Tissue Diseases"),
    ("Atopic Dermatitis", "Skin and Connective Tissue Diseases"),
    ("Systemic Lupus Erythematosus", "Immune System Diseases"),
    ("Crohn Disease", "Digestive System Diseases"),
    ("Ulcerative Colitis", "Digestive System Diseases"),
    ("Nonalcoholic Steatohepatitis", "Digestive System Diseases"),
    ("Chronic Kidney Disease", "Urinary Tract, Sexual Organs, and Pregnancy Conditions"),
    ("Asthma", "Respiratory Tract (Lung and Bronchial) Diseases"),
    ("Chronic Obstructive Pulmonary Disease", "Respiratory Tract (Lung and Bronchial) Diseases"),
    ("Idiopathic Pulmonary Fibrosis", "Respiratory Tract (Lung and Bronchial) Diseases"),
    ("COVID-19", "Infections"),
    ("Influenza", "Infections"),
    ("HIV Infections", "Infections"),
    ("Hepatitis B, Chronic", "Infections"),
    ("Tuberculosis", "Infections"),
    ("Malaria", "Infections"),
    ("Sepsis", "Infections"),
    ("Pneumonia", "Infections"),
    ("Sickle Cell Disease", "Blood and Lymph Conditions"),
    ("Iron Deficiency Anemia", "Blood and Lymph Conditions"),
    ("Preeclampsia", "Urinary Tract, Sexual Organs, and Pregnancy Conditions"),
    ("Polycystic Ovary Syndrome", "Urinary Tract, Sexual Organs, and Pregnancy Conditions"),
    ("Chronic Low Back Pain", "Symptoms and General Pathology"),
    ("Postoperative Pain", "Symptoms and General Pathology"),
    ("Glaucoma", "Eye Diseases"),
    ("Macular Degeneration", "Eye Diseases"),
    ("Periodontitis", "Mouth and Tooth Diseases"),
    ("Movement Disorders", "Nervous System Diseases"),
)

ANCESTOR_TERMS: tuple[str, ...] = (
    "Neoplasms by Histologic Type", "Neoplasms", "Immune System Diseases",
    "Nervous System Diseases", "Cardiovascular Diseases", "Metabolic Diseases",
    "Respiratory Tract Diseases", "Infections", "Digestive System Diseases",
    "Pathologic Processes", "Mental Disorders", "Skin Diseases", "Vascular Diseases",
    "Endocrine System Diseases", "Lymphoproliferative Disorders", "Virus Diseases",
)

BRANCH_ABBREV: dict[str, str] = {
    "Nutritional and Metabolic Diseases": "BC18",
    "Heart and Blood Diseases": "BC14",
    "Nervous System Diseases": "BC10",
    "Behaviors and Mental Disorders": "BXM",
    "Neoplasms": "BC04",
    "Muscle, Bone, and Cartilage Diseases": "BC05",
    "Skin and Connective Tissue Diseases": "BC17",
    "Immune System Diseases": "BC20",
    "Digestive System Diseases": "BC06",
    "Urinary Tract, Sexual Organs, and Pregnancy Conditions": "BXS",
    "Respiratory Tract (Lung and Bronchial) Diseases": "BC08",
    "Infections": "BC01",
    "Blood and Lymph Conditions": "BC15",
    "Symptoms and General Pathology": "BC23",
    "Eye Diseases": "BC11",
    "Mouth and Tooth Diseases": "BC07",
}


def mesh_id(term: str, prefix: str = "D") -> str:
    """A stable, synthetic MeSH-style identifier for ``term``."""
    return f"{prefix}{zlib.crc32(term.encode()) % 1_000_000:06d}"


# ------------------------------------------------------------------------ interventions
DRUG_STEMS = (
    "zel", "abro", "tori", "vexa", "lumi", "quen", "ravo", "sapri", "teno", "olma",
    "dara", "fina", "gefi", "hali", "ibra", "jaro", "kelo", "lira", "mova", "nira",
    "opta", "pexi", "revo", "sita", "tuca", "ulto", "vira", "zanu", "beno", "cefa",
)
DRUG_SUFFIXES = (
    "tinib", "mab", "parib", "ciclib", "vir", "zumab", "lisib", "statin", "gliflozin",
    "glutide", "sartan", "prazole", "oxacin", "cept", "tide", "dronate", "lukast",
)
BEHAVIOURAL = (
    "Cognitive Behavioural Therapy", "Mindfulness-Based Stress Reduction",
    "Structured Exercise Programme", "Motivational Interviewing", "Dietary Counselling",
    "Smartphone Self-Management Application", "Peer Support Group", "Sleep Hygiene Education",
    "Text Message Reminders", "Home-Based Rehabilitation",
)
DEVICES = (
    "Continuous Glucose Monitor", "Transcranial Magnetic Stimulation", "Wearable ECG Patch",
    "Negative Pressure Wound Therapy", "Drug-Eluting Stent", "Low-Level Laser Therapy",
    "Photobiomodulation Helmet", "Vagus Nerve Stimulator",
)
PROCEDURES = (
    "Robotic-Assisted Surgery", "Fecal Microbiota Transplantation", "Radiofrequency Ablation",
    "Stereotactic Body Radiotherapy", "Laparoscopic Resection", "Nerve Block",
)

# ------------------------------------------------------------------------------ sponsors
SPONSOR_ROOTS = (
    "Aldera", "Brightwater", "Calyx", "Dunmore", "Everfield", "Fairhaven", "Greystone",
    "Helixa", "Ironbridge", "Juniper", "Kestrel", "Larchmont", "Meridian", "Northgate",
    "Oakridge", "Pinecrest", "Quillon", "Redwater", "Silverlake", "Thornbury", "Umbra",
    "Valemont", "Westbrook", "Yarrow", "Zenith",
)
INDUSTRY_SUFFIXES = ("Pharmaceuticals", "Therapeutics", "Biosciences", "Pharma Group Inc.",
                     "Medical Devices Ltd.", "Biologics Co., Ltd.")

# ------------------------------------------------------------------------------- people
FIRST_NAMES = (
    "Anna", "Ben", "Chen", "Daniela", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas",
    "Kavya", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
    "Uma", "Viktor", "Wei", "Ximena", "Yusuf", "Zoe", "Arjun", "Bao", "Clara", "Dmitri",
    "Elif", "Farah", "Goran", "Hana", "Ivan", "Julia", "Kenji", "Leila", "Marco", "Nora",
)
LAST_NAMES = (
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Huang",
    "Ibrahim", "Jensen", "Kowalski", "Li", "Moreau", "Nakamura", "Okafor", "Patel",
    "Quinn", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Wang", "Xu", "Yilmaz",
    "Zhang", "Almeida", "Becker", "Chowdhury", "Demir", "Esposito", "Ferreira", "Gupta",
    "Hoffmann", "Ivanova", "Johansson", "Kim", "Lopez", "Meyer", "Novak",
)
DEGREES = ("MD", "MD, PhD", "PhD", "MBBS", "PharmD", "RN", "MSc", "DO", "MD, MPH")

# -------------------------------------------------------------------------------- places
#: (city, state, zip, country, lat, lon): public geography, approximate coordinates.
CITIES: tuple[tuple[str, str | None, str | None, str, float, float], ...] = (
    ("Boston", "Massachusetts", "02114", "United States", 42.35843, -71.05977),
    ("New York", "New York", "10016", "United States", 40.71427, -74.00597),
    ("Philadelphia", "Pennsylvania", "19104", "United States", 39.95233, -75.16379),
    ("Baltimore", "Maryland", "21287", "United States", 39.29038, -76.61219),
    ("Atlanta", "Georgia", "30322", "United States", 33.749, -84.38798),
    ("Miami", "Florida", "33136", "United States", 25.77427, -80.19366),
    ("Chicago", "Illinois", "60611", "United States", 41.85003, -87.65005),
    ("Houston", "Texas", "77030", "United States", 29.76328, -95.36327),
    ("Dallas", "Texas", "75390", "United States", 32.78306, -96.80667),
    ("Denver", "Colorado", "80045", "United States", 39.73915, -104.9847),
    ("Phoenix", "Arizona", "85054", "United States", 33.44838, -112.07404),
    ("Los Angeles", "California", "90095", "United States", 34.05223, -118.24368),
    ("San Francisco", "California", "94143", "United States", 37.77493, -122.41942),
    ("Seattle", "Washington", "98195", "United States", 47.60621, -122.33207),
    ("Minneapolis", "Minnesota", "55455", "United States", 44.97997, -93.26384),
    ("Nashville", "Tennessee", "37232", "United States", 36.16589, -86.78444),
    ("Cleveland", "Ohio", "44195", "United States", 41.4995, -81.69541),
    ("Pittsburgh", "Pennsylvania", "15213", "United States", 40.44062, -79.99589),
    ("Anchorage", "Alaska", "99508", "United States", 61.21806, -149.90028),
    ("Salt Lake City", "Utah", "84132", "United States", 40.76078, -111.89105),
    ("Toronto", "Ontario", "M5G 2C4", "Canada", 43.70643, -79.39864),
    ("Montreal", "Quebec", "H3A 1A1", "Canada", 45.50884, -73.58781),
    ("Vancouver", "British Columbia", "V5Z 1M9", "Canada", 49.24966, -123.11934),
    ("Calgary", "Alberta", "T2N 4N1", "Canada", 51.05011, -114.08529),
    ("Mexico City", None, "14080", "Mexico", 19.42847, -99.12766),
    ("Sao Paulo", "SP", "01246-903", "Brazil", -23.5475, -46.63611),
    ("Porto Alegre", "RS", "90035-903", "Brazil", -30.03306, -51.23),
    ("Buenos Aires", None, "C1181ACH", "Argentina", -34.61315, -58.37723),
    ("Santiago", None, "8380456", "Chile", -33.45694, -70.64827),
    ("Bogota", None, "110111", "Colombia", 4.60971, -74.08175),
    ("Lima", None, "15072", "Peru", -12.04318, -77.02824),
    ("London", None, "SE1 9RT", "United Kingdom", 51.50853, -0.12574),
    ("Manchester", None, "M13 9WL", "United Kingdom", 53.48095, -2.23743),
    ("Edinburgh", None, "EH16 4SA", "United Kingdom", 55.95206, -3.19648),
    ("Dublin", None, "D08 NHY1", "Ireland", 53.33306, -6.24889),
    ("Paris", None, "75013", "France", 48.85341, 2.3488),
    ("Lyon", None, "69003", "France", 45.74846, 4.84671),
    ("Marseille", None, "13005", "France", 43.29695, 5.38107),
    ("Berlin", None, "10117", "Germany", 52.52437, 13.41053),
    ("Munich", None, "81377", "Germany", 48.13743, 11.57549),
    ("Hamburg", None, "20246", "Germany", 53.57532, 10.01534),
    ("Heidelberg", None, "69120", "Germany", 49.40768, 8.69079),
    ("Vienna", None, "1090", "Austria", 48.20849, 16.37208),
    ("Zurich", None, "8091", "Switzerland", 47.36667, 8.55),
    ("Amsterdam", None, "1105 AZ", "Netherlands", 52.37403, 4.88969),
    ("Rotterdam", None, "3015 GD", "Netherlands", 51.9225, 4.47917),
    ("Brussels", None, "1070", "Belgium", 50.85045, 4.34878),
    ("Copenhagen", None, "2100", "Denmark", 55.67594, 12.56553),
    ("Stockholm", None, "171 76", "Sweden", 59.32938, 18.06871),
    ("Oslo", None, "0424", "Norway", 59.91273, 10.74609),
    ("Helsinki", None, "00290", "Finland", 60.16952, 24.93545),
    ("Madrid", None, "28041", "Spain", 40.4165, -3.70256),
    ("Barcelona", None, "08035", "Spain", 41.38879, 2.15899),
    ("Lisbon", None, "1649-035", "Portugal", 38.71667, -9.13333),
    ("Milan", None, "20122", "Italy", 45.46427, 9.18951),
    ("Rome", None, "00168", "Italy", 41.89193, 12.51133),
    ("Naples", None, "80131", "Italy", 40.85216, 14.26811),
    ("Warsaw", None, "02-097", "Poland", 52.22977, 21.01178),
    ("Krakow", None, "31-501", "Poland", 50.06143, 19.93658),
    ("Prague", None, "128 08", "Czechia", 50.08804, 14.42076),
    ("Budapest", None, "1083", "Hungary", 47.49801, 19.03991),
    ("Athens", None, "115 27", "Greece", 37.98376, 23.72784),
    ("Istanbul", None, "34093", "Turkey", 41.01384, 28.94966),
    ("Ankara", None, "06100", "Turkey", 39.91987, 32.85427),
    ("Tel Aviv", None, "6423906", "Israel", 32.08088, 34.78057),
    ("Cairo", None, "11562", "Egypt", 30.06263, 31.24967),
    ("Nairobi", None, "00100", "Kenya", -1.28333, 36.81667),
    ("Johannesburg", "Gauteng", "2193", "South Africa", -26.20227, 28.04363),
    ("Cape Town", "Western Cape", "7925", "South Africa", -33.92584, 18.42322),
    ("Lagos", None, "100001", "Nigeria", 6.45407, 3.39467),
    ("Tehran", None, "1419733141", "Iran, Islamic Republic of", 35.69439, 51.42151),
    ("Shiraz", None, "7134814336", "Iran, Islamic Republic of", 29.61031, 52.53113),
    ("Mumbai", "Maharashtra", "400012", "India", 19.07283, 72.88261),
    ("New Delhi", "Delhi", "110029", "India", 28.63576, 77.22445),
    ("Bengaluru", "Karnataka", "560029", "India", 12.97194, 77.59369),
    ("Chennai", "Tamil Nadu", "600116", "India", 13.08784, 80.27847),
    ("Beijing", "Beijing", "100730", "China", 39.9075, 116.39723),
    ("Shanghai", "Shanghai", "200025", "China", 31.22222, 121.45806),
    ("Guangzhou", "Guangdong", "510060", "China", 23.11667, 113.25),
    ("Wuhan", "Hubei", "430022", "China", 30.58333, 114.26667),
    ("Chengdu", "Sichuan", "610041", "China", 30.66667, 104.06667),
    ("Zhengzhou", "Henan", "450052", "China", 34.75778, 113.64861),
    ("Hangzhou", "Zhejiang", "310003", "China", 30.29365, 120.16142),
    ("Hong Kong", None, "999077", "Hong Kong", 22.27832, 114.17469),
    ("Taipei", None, "100", "Taiwan", 25.04776, 121.53185),
    ("Seoul", None, "03080", "Korea, Republic of", 37.566, 126.9784),
    ("Busan", None, "49241", "Korea, Republic of", 35.10278, 129.04028),
    ("Tokyo", None, "113-8655", "Japan", 35.6895, 139.69171),
    ("Osaka", None, "565-0871", "Japan", 34.69374, 135.50218),
    ("Nagoya", None, "466-8560", "Japan", 35.18147, 136.90641),
    ("Bangkok", None, "10700", "Thailand", 13.75398, 100.50144),
    ("Singapore", None, "169608", "Singapore", 1.28967, 103.85007),
    ("Kuala Lumpur", None, "59100", "Malaysia", 3.1412, 101.68653),
    ("Manila", None, "1000", "Philippines", 14.6042, 120.9822),
    ("Hanoi", None, "100000", "Vietnam", 21.0245, 105.84117),
    ("Sydney", "New South Wales", "2050", "Australia", -33.86785, 151.20732),
    ("Melbourne", "Victoria", "3004", "Australia", -37.814, 144.96332),
    ("Brisbane", "Queensland", "4029", "Australia", -27.46794, 153.02809),
    ("Perth", "Western Australia", "6009", "Australia", -31.95224, 115.8614),
    ("Auckland", None, "1023", "New Zealand", -36.84853, 174.76349),
)

FACILITY_PATTERNS = (
    "{city} University Hospital", "University of {city} Medical Center",
    "{root} Clinical Research Institute", "{city} General Hospital",
    "{root} Cancer Center", "St. {saint} Hospital", "{city} Children's Hospital",
    "{root} Research Site {n}", "{city} Heart Institute", "{root} Medical Group",
    "Regional Hospital of {city}", "{city} Institute of Clinical Sciences",
)
SAINTS = ("Mary's", "Luke's", "Joseph's", "Vincent's", "Anne's", "George's", "Thomas'", "Paul's")

# ------------------------------------------------------------------------------ sentences
_SUBJECTS = (
    "This study", "The trial", "The investigators", "The sponsor", "The research team",
    "Participants", "Eligible patients", "The primary analysis", "An independent committee",
    "The protocol", "Each site", "The data monitoring committee",
)
_VERBS = (
    "will evaluate", "aims to assess", "will compare", "is designed to measure",
    "will characterize", "intends to determine", "will explore", "seeks to confirm",
    "will estimate", "is expected to describe",
)
_OBJECTS = (
    "the safety and tolerability of the study treatment",
    "the change from baseline in disease activity scores",
    "the pharmacokinetic profile after repeated oral dosing",
    "long-term outcomes over a follow-up period of up to five years",
    "the proportion of participants achieving a clinical response",
    "health-related quality of life using validated questionnaires",
    "the incidence of treatment-emergent adverse events",
    "biomarkers in blood, urine and tissue samples",
    "the effect of dose escalation on exposure and response",
    "time to first relapse after randomization",
    "progression-free survival assessed by blinded central review",
    "adherence to the assigned intervention",
    "the cost-effectiveness of the intervention compared with usual care",
    "hospital readmission within ninety days",
)
_TAILS = (
    "", "", " in an outpatient setting", " across participating centres",
    " compared with placebo", " compared with standard of care",
    " in adults aged 18 years and older", " during a 12-week treatment period",
    " at weeks 4, 12, 24 and 52", " according to a pre-specified statistical analysis plan",
    " with stratification by region and baseline severity", " under open-label conditions",
)
_EXTRA = (
    "Randomization will be performed centrally using a computer-generated schedule.",
    "Study visits take place at screening, baseline and every four weeks thereafter.",
    "Participants may withdraw consent at any time without giving a reason.",
    "Safety laboratory tests include haematology, clinical chemistry and urinalysis.",
    "Concomitant medications are recorded at every visit.",
    "An interim analysis is planned after half of the participants complete week 24.",
    "Imaging will be read centrally by assessors blinded to treatment allocation.",
    "Dose modifications are permitted for toxicity as described in the protocol.",
    "Missing data will be handled by multiple imputation.",
    "The sample size provides 90% power at a two-sided alpha of 0.05.",
    "Follow-up telephone calls are made at months 3 and 6 after the last dose.",
    "Blood samples for pharmacokinetics are drawn before and after dosing.",
)

_CRIT_INCL = (
    "Age {a} years or older at the time of signing informed consent",
    "Confirmed diagnosis according to current international guidelines",
    "Eastern Cooperative Oncology Group (ECOG) performance status of 0 to 2",
    "Adequate bone marrow, liver and renal function",
    "Body mass index between 18.5 and 40 kg/m2",
    "Able and willing to comply with the study visits and procedures",
    "Women of childbearing potential must use effective contraception",
    "At least one measurable lesion per RECIST version 1.1",
    "Stable background therapy for at least 4 weeks before screening",
    "Written informed consent obtained before any study-specific procedure",
    "HbA1c between 7.0% and 10.5% at screening",
    "Estimated glomerular filtration rate >= 30 mL/min/1.73 m2",
    "Life expectancy of at least 3 months",
    "Willing to provide blood and tissue samples for biomarker analysis",
)
_CRIT_EXCL = (
    "Pregnancy or breastfeeding",
    "Participation in another interventional study within 30 days",
    "Known hypersensitivity to any component of the study drug",
    "Active infection requiring systemic treatment",
    "History of malignancy within the past 5 years, except treated skin cancer",
    "Uncontrolled hypertension (systolic > 160 mmHg or diastolic > 100 mmHg)",
    "Major surgery within 28 days before the first dose",
    "Known HIV, hepatitis B or hepatitis C infection",
    "Clinically significant cardiac disease, including heart failure NYHA class III-IV",
    "Alcohol or drug abuse within the past year",
    "Any condition that, in the opinion of the investigator, would interfere with the study",
    "Previous treatment with a drug of the same class",
    "QTc interval > 470 ms at screening",
    "Inability to swallow tablets",
)

_MEASURES = (
    "Change From Baseline in {score} at Week {w}",
    "Percentage of Participants With {event}",
    "Number of Participants With Treatment-Emergent Adverse Events",
    "Overall Survival", "Progression-Free Survival", "Objective Response Rate",
    "Time to {event}", "Maximum Plasma Concentration (Cmax)",
    "Area Under the Concentration-Time Curve (AUC)",
    "Proportion of Participants Achieving {score} Remission",
    "Incidence of {event} Within {w} Weeks", "Duration of Response",
    "Mean Change in {score} From Baseline to Month {m}",
)
_SCORES = ("HbA1c", "Disease Activity Score (DAS28)", "Pain Numeric Rating Scale",
           "Hamilton Depression Rating Scale (HAM-D)", "Six-Minute Walk Distance",
           "Forced Expiratory Volume in 1 Second (FEV1)", "Systolic Blood Pressure",
           "Body Weight", "EQ-5D-5L Index", "Mini-Mental State Examination (MMSE)",
           "Expanded Disability Status Scale (EDSS)", "Eczema Area and Severity Index (EASI)")
_EVENTS = ("Serious Adverse Events", "Hospitalization", "Disease Progression",
           "Clinical Relapse", "Major Adverse Cardiovascular Events", "Grade 3 or Higher Toxicity",
           "Treatment Discontinuation", "Hypoglycaemia", "Infusion-Related Reactions")
_TIMEFRAMES = ("Baseline, Week 12", "Baseline up to Week 52", "Up to 24 months",
               "Day 1 through Day 29", "From randomization until death, up to 5 years",
               "Week 4, Week 8, Week 12", "Up to 30 days after the last dose",
               "Predose and 0.5, 1, 2, 4, 8 and 24 hours postdose", "Month 6", "Day 28")
_MEASURE_DESCRIPTIONS = (
    "Assessed by the investigator at each scheduled visit.",
    "Defined as the time from randomization to the first documented event.",
    "Higher scores indicate a worse outcome. The scale ranges from 0 to 100.",
    "Adverse events are graded according to CTCAE version 5.0.",
    "Measured by a central laboratory blinded to treatment assignment.",
    "Participants without an event are censored at the date of last contact.",
    "",
)

WHY_STOPPED = (
    "Sponsor decision", "Slow accrual", "Business decision, not related to safety",
    "Funding withdrawn", "Futility at interim analysis", "PI left the institution",
    "Study drug supply discontinued", "Enrollment target could not be reached",
)

ADVERSE_TERMS = (
    "Headache", "Nausea", "Fatigue", "Diarrhoea", "Vomiting", "Dizziness", "Rash",
    "Pyrexia", "Cough", "Arthralgia", "Back pain", "Insomnia", "Anaemia", "Constipation",
    "Decreased appetite", "Hypertension", "Upper respiratory tract infection",
    "Urinary tract infection", "Nasopharyngitis", "Pruritus", "Oedema peripheral",
    "Abdominal pain", "Dyspnoea", "Myalgia", "Neutropenia", "Thrombocytopenia",
    "Alanine aminotransferase increased", "Hypokalaemia", "Pneumonia", "Sepsis",
    "Atrial fibrillation", "Cardiac failure", "Fall", "Anxiety", "Depression",
)
ORGAN_SYSTEMS = (
    "Nervous system disorders", "Gastrointestinal disorders",
    "General disorders and administration site conditions", "Infections and infestations",
    "Skin and subcutaneous tissue disorders", "Blood and lymphatic system disorders",
    "Musculoskeletal and connective tissue disorders", "Investigations",
    "Metabolism and nutrition disorders", "Cardiac disorders",
    "Respiratory, thoracic and mediastinal disorders", "Psychiatric disorders",
)


def _build_sentences(rng: random.Random, n: int) -> tuple[str, ...]:
    out = []
    for _ in range(n):
        if rng.random() < 0.25:
            out.append(_pick(rng, _EXTRA))
        else:
            out.append(f"{_pick(rng, _SUBJECTS)} {_pick(rng, _VERBS)} {_pick(rng, _OBJECTS)}"
                       f"{_pick(rng, _TAILS)}.")
    return tuple(out)


def _build_measures(rng: random.Random, n: int) -> tuple[str, ...]:
    out = []
    for _ in range(n):
        out.append(_pick(rng, _MEASURES).format(
            score=_pick(rng, _SCORES), event=_pick(rng, _EVENTS),
            w=_pick(rng, (4, 8, 12, 24, 26, 48, 52)), m=_pick(rng, (3, 6, 12, 18, 24))))
    return tuple(out)


_POOL_RNG = random.Random(20260105)
#: Sentences descriptions are assembled from.
SENTENCES: tuple[str, ...] = _build_sentences(_POOL_RNG, 3000)
#: Outcome measure titles.
MEASURES: tuple[str, ...] = _build_measures(_POOL_RNG, 600)
TIMEFRAMES = _TIMEFRAMES
MEASURE_DESCRIPTIONS = _MEASURE_DESCRIPTIONS
INCLUSION = tuple(c.format(a=a) if "{a}" in c else c for c in _CRIT_INCL for a in (18,))
EXCLUSION = _CRIT_EXCL


def drug_name(rng: random.Random) -> str:
    """An invented INN-like drug name ("Zelvatinib")."""
    return (_pick(rng, DRUG_STEMS) + _pick(rng, ("", "va", "ri", "lo", "ne"))
            + _pick(rng, DRUG_SUFFIXES)).capitalize()


def person(rng: random.Random) -> str:
    return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"
