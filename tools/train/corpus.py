"""Texts for the synthetic Mandarin test models.

Everything here is written for this project: number readings (digit strings,
amounts, dates, times, percentages) and everyday customer-service sentences.
The label of an utterance is exactly the hanzi string that espeak-ng reads.
"""

import random

DIGITS = "零一二三四五六七八九"

# Hand-written customer-service sentences (call centre, bank, telecom, travel,
# delivery, utilities). No punctuation: labels are what is spoken.
HANDWRITTEN = """
您好请问有什么可以帮您
请稍等我帮您查询一下
感谢您的耐心等待
请问您是本人吗
请提供您的身份证号码
请说出您的手机号码
您的订单已经发货了
您的快递预计明天送达
请问您需要办理什么业务
我要查询话费余额
我想办理宽带业务
我的网络连不上了
请帮我转人工服务
正在为您转接人工客服
很抱歉让您久等了
这个问题我们会尽快处理
请您保持电话畅通
稍后会有工作人员联系您
您还有其他问题吗
祝您生活愉快再见
我要挂失银行卡
我的信用卡丢了
请问怎么修改密码
您的密码已经重置成功
请输入六位数字密码
请在听到提示音后留言
您的来电已经转入语音信箱
本次通话可能会被录音
请问您对我们的服务满意吗
满意请按一不满意请按二
返回上一级菜单请按星号
重听请按井号键
我想查一下账单
这个月的账单是多少
我要申请退款
退款会在三个工作日内到账
请问发票怎么开
我需要开具增值税发票
您的申请已经提交成功
审核结果会短信通知您
我要预约明天上午的时间
请问还有空位吗
我想改签火车票
航班延误了怎么办
请问行李托运有什么规定
我的包裹还没有收到
快递员什么时候上门取件
请核对一下收货地址
地址填写错了能改吗
我要投诉服务态度
非常抱歉给您带来不便
我们会认真核实情况
处理结果会在两天内回复您
请问营业厅几点关门
附近有没有网点
我要办理销户
请问需要带什么证件
请携带本人身份证原件
您的话费余额不足
请及时充值以免停机
我想开通国际漫游
流量套餐怎么更换
下个月生效可以吗
您的套餐已经变更成功
我家停电了什么时候来电
水费怎么缴纳
燃气表坏了能派人来修吗
维修人员下午会上门
请问您家的具体地址是哪里
我想咨询一下贷款利率
贷款需要什么材料
请问分期手续费是多少
您的额度已经提升
我要查询积分
积分可以兑换礼品
请问会员怎么办理
会员有效期是一年
我要取消自动续费
已经为您取消了
请问还有什么可以帮您的吗
没有了谢谢
不客气这是我应该做的
请问现在方便接听电话吗
我稍后再打给您
您的验证码是多少
请不要把验证码告诉别人
警惕电信诈骗
请问这笔交易是您本人操作的吗
这不是我操作的
我们已经为您冻结账户
请到柜台办理解冻
我想换一张新卡
新卡会邮寄到您的地址
请问邮寄需要几天
一般三到五天
我要修改预留手机号
请问您的姓名是什么
请再说一遍
我没有听清楚
声音有点小
信号不太好
请您大声一点
好的我明白了
没问题马上为您处理
请问您还在线吗
通话即将结束
请对本次服务进行评价
欢迎致电客服热线
普通话服务请按一
英语服务请按二
人工服务请按零
查询订单请按三
我要查快递
请告诉我运单号
运单号已经发到您手机上了
今天的天气怎么样
明天会下雨吗
请帮我订一张机票
我要去北京
请问去上海的高铁还有票吗
我想订一个酒店房间
请问有停车位吗
请问几点可以入住
退房时间是中午十二点
早餐在二楼餐厅
房间里的空调坏了
请派人来看一下
我马上安排工作人员过去
请问您的房间号是多少
请帮我叫一辆出租车
车已经到楼下了
司机师傅的电话是多少
请问从这里到机场要多久
大概需要四十分钟
路上有点堵车
请系好安全带
欢迎下次光临
请问医院几点开门
我想挂一个专家号
请问需要空腹吗
检查结果什么时候出来
请按时服药
请问药店在哪里
我要续交保险费
保单已经生效了
理赔需要提供哪些材料
请上传事故照片
理赔款会打到您的账户
请问还款日是哪天
我想提前还款
本月应还金额已经更新
逾期会影响个人信用
请问可以延期还款吗
我们需要审核您的申请
请保持手机畅通
您的问题已经记录下来了
工单编号已经发送给您
请耐心等待处理结果
"""

# Sentence templates: (prefix, object, suffix) combinations, all plain service
# speech. 4 x 10 x 5 = 200 sentences.
TEMPLATE_PREFIX = ["请问", "我想知道", "麻烦告诉我", "能不能查一下"]
TEMPLATE_OBJECT = [
    "银行", "营业厅", "快递网点", "医院", "图书馆",
    "售后中心", "停车场", "服务台", "健身房", "超市",
]
TEMPLATE_SUFFIX = ["几点开门", "在什么地方", "电话是多少", "今天营业吗", "怎么过去"]


def sentences():
    hand = [s.strip() for s in HANDWRITTEN.strip().splitlines() if s.strip()]
    tpl = [p + o + s for p in TEMPLATE_PREFIX for o in TEMPLATE_OBJECT for s in TEMPLATE_SUFFIX]
    out = []
    seen = set()
    for s in hand + tpl:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def read_digits(s, yao=False):
    out = "".join(DIGITS[int(c)] for c in s)
    return out.replace("一", "幺") if yao else out


def read_int(n, liang=False):
    """Chinese reading of 0 <= n < 10^8 (三百五十六, 一千零五, 十二)."""
    if n == 0:
        return "零"
    units = ["", "十", "百", "千"]

    def below_10k(m, leading):
        s = ""
        zero = False
        for pos in (3, 2, 1, 0):
            d = (m // 10 ** pos) % 10
            if d == 0:
                if s:
                    zero = True
                continue
            if zero:
                s += "零"
                zero = False
            if pos == 1 and d == 1 and not s and leading:
                s += "十"
            else:
                ch = DIGITS[d]
                if liang and d == 2 and pos >= 2:
                    ch = "两"
                s += ch + units[pos]
        return s

    hi, lo = divmod(n, 10000)
    if hi:
        s = below_10k(hi, True) + "万"
        if lo:
            if lo < 1000:
                s += "零"
            s += below_10k(lo, False)
        return s
    return below_10k(lo, True)


def amount(rng):
    n = rng.choice([rng.randint(1, 99), rng.randint(100, 9999), rng.randint(10000, 999999)])
    s = read_int(n, liang=rng.random() < 0.3)
    if rng.random() < 0.4:
        s += "点" + read_digits(str(rng.randint(0, 99)).rstrip("0") or "5")
    return s + rng.choice(["元", "元", "块", ""])


def date(rng):
    y = "".join(DIGITS[int(c)] for c in str(rng.randint(1990, 2039)))
    m = read_int(rng.randint(1, 12))
    d = read_int(rng.randint(1, 31))
    kind = rng.random()
    if kind < 0.5:
        return f"{y}年{m}月{d}{rng.choice('日号')}"
    if kind < 0.75:
        return f"{m}月{d}{rng.choice('日号')}"
    return f"{y}年{m}月"


def clock(rng):
    h = read_int(rng.randint(1, 12), liang=rng.random() < 0.5)
    mi = rng.randint(0, 59)
    prefix = rng.choice(["", "上午", "下午", "晚上", "早上"])
    if mi == 0:
        return f"{prefix}{h}点"
    if mi == 30 and rng.random() < 0.5:
        return f"{prefix}{h}点半"
    mm = ("零" + DIGITS[mi]) if mi < 10 else read_int(mi)
    return f"{prefix}{h}点{mm}分"


def digit_string(rng):
    if rng.random() < 0.35:
        s = "1" + "".join(rng.choice("0123456789") for _ in range(10))
    else:
        s = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 10)))
    return read_digits(s, yao=rng.random() < 0.15)


def percent(rng):
    return "百分之" + read_int(rng.randint(1, 100))


def number_text(rng):
    r = rng.random()
    if r < 0.42:
        return digit_string(rng)
    if r < 0.64:
        return amount(rng)
    if r < 0.82:
        return date(rng)
    if r < 0.95:
        return clock(rng)
    return percent(rng)


def number_texts(seed, n):
    rng = random.Random(seed)
    return [number_text(rng) for _ in range(n)]


def vocabulary():
    chars = set("".join(sentences()))
    chars |= set(DIGITS) | set("十百千万点元块年月日号幺两分半上下午晚早之")
    return sorted(chars)


if __name__ == "__main__":
    ss = sentences()
    print(len(ss), "sentences;", len(vocabulary()), "characters")
    for t in number_texts(1, 12):
        print(t)
