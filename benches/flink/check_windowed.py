"""Checks Flink's q5, q7 and q8 rows against an independent reference in
Python (multisets), on the events Flink read.

    NEXMARK_COUNT=1 NEXMARK_ROWS=DIR/rows-q5.txt java ... NexmarkSql EVENTS.jsonl q5 2 N   (and q7, q8)
    python3 benches/flink/check_windowed.py EVENTS.jsonl DIR

Windows are aligned to the epoch; Flink prints window bounds in UTC
(table.local-time-zone).
"""
import collections
import datetime
import json
import re
import sys

events, d = sys.argv[1], sys.argv[2]
ev = [json.loads(l) for l in open(events)]
def ms(s):
    return int(datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()*1000+0.5)
cnt=collections.defaultdict(collections.Counter)
bids=[e['bid'] for e in ev if e['event_type']==2]
for b in bids:
    t=b['dateTime']; s=t//2000*2000
    while s>t-10000:
        cnt[s+10000][b['auction']]+=1; s-=2000
q5=collections.Counter()
for end,c in cnt.items():
    m=max(c.values())
    for a,n in c.items():
        if n==m: q5[(a,n,end)]+=1
f5=collections.Counter()
for l in open(f'{d}/rows-q5.txt'):
    a,n,e=l.strip()[3:-1].split(', ')
    f5[(int(a),int(n),ms(e))]+=1
print('q5 Flink rows equal the Python reference:', q5==f5, sum(q5.values()), sum(f5.values()))
mx=collections.defaultdict(int)
for b in bids: mx[b['dateTime']//10000]=max(mx[b['dateTime']//10000],b['price'])
q7=collections.Counter((b['auction'],b['price'],b['bidder'],b['dateTime']) for b in bids if b['price']==mx[b['dateTime']//10000])
f7=collections.Counter(tuple(int(x) for x in l.strip()[3:-1].split(', ')[:4]) for l in open(f'{d}/rows-q7.txt'))
print('q7 Flink rows equal the Python reference:', q7==f7, sum(q7.values()), sum(f7.values()))
P={}; S=set()
for e in ev:
    if e['event_type']==0: p=e['person']; P[(p['dateTime']//10000*10000,p['id'])]=p['name']
    if e['event_type']==1: a=e['auction']; S.add((a['dateTime']//10000*10000,a['seller']))
q8=collections.Counter((i,n,s) for (s,i),n in P.items() if (s,i) in S)
f8=collections.Counter()
for l in open(f'{d}/rows-q8.txt'):
    m=re.match(r'\+I\[(\d+), (.*), (\S+)\]$', l.strip()); f8[(int(m[1]),m[2],ms(m[3]))]+=1
print('q8 Flink rows equal the Python reference:', q8==f8, sum(q8.values()), sum(f8.values()))
