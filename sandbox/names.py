"""Naming traditions of the sandbox country, as one pool of names addressed by integer indexes.

People carry names as indexes into `NamePool.names`, so that a million people cost a few integer
arrays rather than a million strings. Where Faker has a locale for a tradition its lists are read
off the provider classes once (calling Faker per person is far too slow); the traditions Faker lacks
are written out here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

# Traditions Faker has no locale for. Kikuyu and Luo surnames are fathers' names, so the male list
# doubles as the surname list.
_KIKUYU_MALE = (
    "Kamau Mwangi Njoroge Kariuki Maina Ngugi Githinji Karanja Kimani Macharia Wainaina Gitau Mugo "
    "Kinyua Muriuki Ndungu Waweru Njuguna Irungu Gachanja Mbugua Kiarie Muchiri Gathogo Kuria Mburu "
    "Nderitu Wachira Githongo Kiragu"
)
_KIKUYU_FEMALE = (
    "Wanjiru Wambui Njeri Nyambura Wairimu Wanjiku Wangari Muthoni Njoki Wangui Waithera Wacera Nduta "
    "Wahu Wamaitha Mumbi Gathoni Kabura Waceke Wangeci Nyokabi Wanjugu Mukami Wariara"
)
_KIKUYU_CHRISTIAN_MALE = "John Joseph Peter James Paul David Samuel Stephen Daniel Francis Simon Patrick"
_KIKUYU_CHRISTIAN_FEMALE = "Mary Grace Faith Jane Lucy Esther Margaret Elizabeth Ann Catherine Alice Rose"
_LUO_MALE = (
    "Otieno Odhiambo Ochieng Omondi Onyango Owino Okoth Ouma Oduor Okello Ogutu Obiero Odera Oloo "
    "Opiyo Otuoma Oketch Ochola Owuor Odongo Okumu Ojwang Oyoo Agutu"
)
_LUO_FEMALE = (
    "Achieng Akinyi Atieno Adhiambo Awino Anyango Akoth Auma Apiyo Aoko Amondi Adongo Awuor Akello "
    "Ochieng Adoyo Anyango Aluoch Akumu Atoti"
)
_SHONA_MALE = (
    "Tendai Tatenda Farai Tinashe Kudakwashe Tapiwa Takudzwa Simbarashe Tafadzwa Tonderai Munyaradzi "
    "Tawanda Fungai Kudzai Tanaka Blessing Tichaona Panashe Anesu Tendekai Ngonidzashe Tonderayi"
)
_SHONA_FEMALE = (
    "Rufaro Chipo Rumbidzai Tsitsi Nyasha Vimbai Ruvimbo Chiedza Shamiso Tariro Fadzai Rutendo Memory "
    "Precious Tsungai Nyarai Kudzai Tatenda Ropafadzo Mufaro Chengetai Yeukai"
)
_SHONA_SURNAMES = (
    "Moyo Ncube Sibanda Dube Chikwanha Mutasa Marufu Chinamasa Mapfumo Chiwenga Mhlanga Zvobgo Nyathi "
    "Gumbo Makoni Chigumba Mushonga Madziva Chitepo Mukanya Shumba Mhofu Matare Nyamande Mlambo "
    "Manyika Chidzambwa Marimo Mazvimba Chirwa Mukandatsama Gwatidzo Chimombe Mutsvangwa Zhou"
)
_AMHARIC_MALE = (
    "Abebe Bekele Tesfaye Getachew Alemu Girma Mulugeta Haile Tadesse Solomon Dawit Yohannes Kebede "
    "Mengistu Tekle Desta Berhanu Gebre Wolde Assefa Fikru Biniam Henok Yonas Tewodros Kassahun "
    "Demissie Legesse Mesfin Negash Tilahun Worku Ayele Abera Gizaw Lemma Shiferaw Zewdu"
)
_AMHARIC_FEMALE = (
    "Almaz Tigist Meron Hirut Selam Bethlehem Mekdes Aster Tsehay Genet Hanna Sara Mahlet Eden Ruth "
    "Yeshi Abeba Senait Lemlem Frehiwot Tsion Meseret Birtukan Wubit Zewditu Azeb Hiwot Kidist"
)
_SOMALI_MALE = (
    "Mohamed Ahmed Abdi Ali Hassan Hussein Omar Yusuf Abdullahi Ismail Farah Abdirahman Said Osman "
    "Mahamud Aden Warsame Jama Nur Ibrahim Abdikarim Guled Hirsi Dahir Mohamud Abdulkadir Abdiwali "
    "Bashir Mukhtar Sharif Elmi Egal"
)
_SOMALI_FEMALE = (
    "Fadumo Hodan Amina Asha Halima Sahra Khadija Faiza Maryan Ubah Ayan Hawa Deqa Nasra Ifrah Ladan "
    "Sagal Hibo Fartun Idil Nimco Sucaad Anisa Filsan Safiya Zamzam"
)


@dataclass(frozen=True)
class TraditionSpec:
    """Where a tradition's names come from: a Faker locale, our own lists, or both."""

    code: str
    locale: str | None = None
    male: str = ""
    female: str = ""
    surnames: str = ""
    #: Patronymic: a child's surname is the father's given name and its second name the father's
    #: surname (the grandfather's given name), as in Ethiopian and Somali naming.
    patronymic: bool = False
    #: Share of people who carry a second (middle) name, in traditions that are not patronymic.
    second_name_rate: float = 0.35
    #: Share of wives who take their husband's surname.
    wife_takes_surname: float = 0.8


TRADITIONS: tuple[TraditionSpec, ...] = (
    TraditionSpec("kikuyu", male=_KIKUYU_MALE, female=_KIKUYU_FEMALE, surnames=_KIKUYU_MALE, second_name_rate=0.7),
    TraditionSpec("luo", male=_LUO_MALE, female=_LUO_FEMALE, surnames=_LUO_MALE, second_name_rate=0.6),
    TraditionSpec("kenyan", locale="en_KE"),
    TraditionSpec("swahili", locale="sw"),
    TraditionSpec("yoruba", locale="yo_NG", second_name_rate=0.5),
    TraditionSpec("igbo", locale="ig_NG"),
    TraditionSpec("hausa", locale="ha_NG", second_name_rate=0.2),
    TraditionSpec("nigerian", locale="en_NG"),
    TraditionSpec("akan", locale="tw_GH"),
    TraditionSpec("zulu", locale="zu_ZA"),
    TraditionSpec("shona", male=_SHONA_MALE, female=_SHONA_FEMALE, surnames=_SHONA_SURNAMES),
    TraditionSpec(
        "amharic",
        male=_AMHARIC_MALE,
        female=_AMHARIC_FEMALE,
        patronymic=True,
        second_name_rate=0.0,
        wife_takes_surname=0.0,
    ),
    TraditionSpec(
        "somali",
        male=_SOMALI_MALE,
        female=_SOMALI_FEMALE,
        patronymic=True,
        second_name_rate=0.0,
        wife_takes_surname=0.0,
    ),
)
TRADITION_CODES: tuple[str, ...] = tuple(t.code for t in TRADITIONS)


@dataclass(frozen=True)
class Tradition:
    """One tradition's name lists, as indexes into the pool, with draw weights (common names first)."""

    spec: TraditionSpec
    male: IntArray
    male_p: npt.NDArray[np.float64]
    female: IntArray
    female_p: npt.NDArray[np.float64]
    surnames: IntArray
    surnames_p: npt.NDArray[np.float64]


@dataclass(frozen=True)
class NamePool:
    """Every name of every tradition, once; people and records hold indexes into `names`."""

    names: tuple[str, ...]
    traditions: tuple[Tradition, ...]

    def as_array(self) -> npt.NDArray[np.object_]:
        """The pool as an object array, so `pool[idx]` turns index arrays into strings in one step."""
        out = np.empty(len(self.names), dtype=object)
        out[:] = self.names
        return out


def _faker_list(locale: str, attr: str) -> tuple[list[str], list[float] | None]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    value = getattr(provider, attr)
    if isinstance(value, Mapping):
        return [str(k) for k in value], [float(v) for v in value.values()]
    return [str(v) for v in value], None


def _zipf(n: int) -> npt.NDArray[np.float64]:
    """Name frequencies are heavy-headed: a few names are very common, which matters for matching."""
    w = 1.0 / (np.arange(n, dtype=np.float64) + 4.0) ** 0.9
    return np.asarray(w / w.sum(), dtype=np.float64)


@cache
def pool() -> NamePool:
    """Build the pool once per process; the order is fixed so indexes are stable across runs."""
    names: list[str] = []
    where: dict[str, int] = {}

    def index(items: Sequence[str]) -> IntArray:
        out = []
        for name in dict.fromkeys(items):  # ordered de-duplication
            if name not in where:
                where[name] = len(names)
                names.append(name)
            out.append(where[name])
        return np.asarray(out, dtype=np.int64)

    def weights(items: Sequence[str], given: list[float] | None) -> npt.NDArray[np.float64]:
        if given is None:
            # Faker lists are alphabetical; spread the Zipf ranks over them by a fixed shuffle.
            ranks = np.random.default_rng(len(items)).permutation(len(dict.fromkeys(items)))
            return _zipf(len(ranks))[ranks]
        seen: dict[str, float] = {}
        for name, w in zip(items, given, strict=True):
            seen[name] = seen.get(name, 0.0) + w
        arr = np.asarray(list(seen.values()), dtype=np.float64)
        return np.asarray(arr / arr.sum(), dtype=np.float64)

    traditions = []
    for spec in TRADITIONS:
        lists: dict[str, tuple[list[str], list[float] | None]] = {}
        if spec.locale:
            lists["male"] = _faker_list(spec.locale, "first_names_male")
            lists["female"] = _faker_list(spec.locale, "first_names_female")
            lists["surnames"] = _faker_list(spec.locale, "last_names")
        else:
            male = spec.male.split()
            female = spec.female.split()
            if spec.code == "kikuyu":  # Kikuyu given names: a Christian name beside the Kikuyu one
                male += _KIKUYU_CHRISTIAN_MALE.split()
                female += _KIKUYU_CHRISTIAN_FEMALE.split()
            lists["male"] = (male, None)
            lists["female"] = (female, None)
            lists["surnames"] = ((spec.surnames or spec.male).split(), None)
        idx = {k: index(v[0]) for k, v in lists.items()}
        w = {k: weights(*v) for k, v in lists.items()}
        traditions.append(
            Tradition(spec, idx["male"], w["male"], idx["female"], w["female"], idx["surnames"], w["surnames"])
        )
    return NamePool(tuple(names), tuple(traditions))


# Spelling variants that registries really hold for the same name: any member may be written for
# any other. Used by `sandbox.noise` for transliteration noise.
VARIANT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Mohamed", "Mohammed", "Muhammad", "Mohamud", "Mohammad", "Muhamed"),
    ("Ahmed", "Ahmad", "Axmed"),
    ("Abdullahi", "Abdulahi", "Abdallah", "Abdullah"),
    ("Hussein", "Husein", "Hussain", "Xuseen"),
    ("Hassan", "Hasan", "Xasan"),
    ("Ibrahim", "Ibrahima", "Ebrahim"),
    ("Yusuf", "Yusuph", "Yousuf"),
    ("Fatima", "Fatuma", "Fadumo", "Fatma"),
    ("Khadija", "Hadiza", "Khadijah", "Kadija"),
    ("Aisha", "Ayesha", "Aysha"),
    ("Oluwaseun", "Oluwasegun", "Oluseun"),
    ("Wanjiru", "Wanjiro"),
    ("Wanjiku", "Wanjiko"),
    ("Achieng", "Acheng", "Achieng'"),
    ("Tesfaye", "Tesfay"),
    ("Getachew", "Getachou"),
    ("Yohannes", "Yohanes", "Johannes"),
    ("Tewodros", "Teodros"),
    ("Mengistu", "Mengestu"),
    ("Chukwu", "Chuku"),
    ("Kwame", "Kwami"),
    ("Kofi", "Koffi"),
    ("Kwabena", "Kobina"),
    ("Adwoa", "Adjoa"),
    ("Akosua", "Akosuah"),
    ("Ndungu", "Ndung'u"),
    ("Njoroge", "Njoroghe"),
    ("Abdirahman", "Abdulrahman", "Abdurahman"),
    ("Osman", "Othman", "Usman"),
)

# Short forms people give instead of the registered name.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Elizabeth": ("Liz", "Beth", "Betty"),
    "Margaret": ("Maggie", "Peggy"),
    "Catherine": ("Cathy", "Kate"),
    "Patricia": ("Pat",),
    "Joseph": ("Joe",),
    "Benjamin": ("Ben",),
    "Samuel": ("Sam",),
    "Daniel": ("Dan",),
    "Michael": ("Mike",),
    "Christopher": ("Chris",),
    "Emmanuel": ("Emma",),
    "Stephen": ("Steve",),
    "Nicholas": ("Nick",),
    "Babatunde": ("Tunde",),
    "Oluwafemi": ("Femi",),
    "Olusegun": ("Segun",),
    "Oluwaseun": ("Seun",),
    "Chukwuemeka": ("Emeka",),
    "Chinedu": ("Nedu",),
    "Ifeanyi": ("Ify",),
    "Nkosinathi": ("Nathi",),
    "Simbarashe": ("Simba",),
    "Kudakwashe": ("Kuda",),
    "Munyaradzi": ("Munya",),
    "Tafadzwa": ("Tafi",),
    "Abdirahman": ("Abdi",),
    "Abdullahi": ("Abdul",),
    "Gugulethu": ("Gugu",),
    "Nomvula": ("Vula",),
}
